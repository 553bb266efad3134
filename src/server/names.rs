//! What a person's account ID or a device's name may be (issue 23, R11):
//! the audit log, the admin pages and the sign-in records show these names
//! as who did what, so a name must read as itself and must not pass for
//! another. Refused: control and invisible formatting characters (bidi
//! overrides reverse the text after them in a table cell; zero-width
//! characters make `sato` and `sa\u{200B}to` two accounts that look one),
//! spaces at either end, and a name that differs from one already in use
//! — by an account or a device — only in case, width or spacing (`SATO`
//! next to `sato`, a user `kiosk-1` next to the kiosk `kiosk-1`).

/// The longest name, in characters.
pub const MAX_CHARS: usize = 64;

/// Why a name cannot be used, in Japanese and English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub code: &'static str,
    pub ja: String,
    pub en: String,
}

/// Invisible characters that change how the text around them reads
/// (Unicode's format category, Cf, as far as names are concerned).
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// `name` on its own: length and characters.
pub fn check(name: &str) -> Result<(), BadName> {
    let n = name.chars().count();
    if n == 0 || n > MAX_CHARS {
        return Err(BadName {
            code: "bad_name",
            ja: format!("名前（ID）は 1〜{MAX_CHARS} 文字にしてください"),
            en: format!("a name must be 1–{MAX_CHARS} characters"),
        });
    }
    if name.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(BadName {
            code: "bad_name",
            ja: "名前（ID）に制御文字や見えない文字（方向指定・ゼロ幅の文字など）は使えません".into(),
            en: "a name may not contain control or invisible characters (direction marks, zero-width characters)".into(),
        });
    }
    if name.trim() != name {
        return Err(BadName {
            code: "bad_name",
            ja: "名前（ID）の前後に空白は入れられません".into(),
            en: "a name may not start or end with a space".into(),
        });
    }
    Ok(())
}

/// The form two names are compared in: case, full-width letters,
/// look-alike hyphens and spaces do not make a different name.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // Full-width ASCII (Ａ, ｓ, －) as its ASCII letter.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
            // Hyphens and dashes that read as '-' (outside tester replay4
            // N3: `standby‐a` with U+2010 beside `standby-a`).
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{30FC}' => '-',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `name` would be taken for `other` (and is not `other` itself).
pub fn confusable(name: &str, other: &str) -> bool {
    name != other && folded(name) == folded(other)
}

/// `name` for a new account or device, against the names in use: `same`
/// are of its own kind (the same name there is the same account or
/// device), `others` of the other kind (accounts for a device, devices for
/// an account), where even the same name is refused.
pub fn check_new<'a>(
    name: &str,
    same: impl IntoIterator<Item = &'a str>,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<(), BadName> {
    check(name)?;
    let taken = |other: &str| BadName {
        code: "name_taken",
        ja: format!(
            "「{name}」は、すでにある「{other}」と紛らわしいため使えません。別の名前にしてください"
        ),
        en: format!("\"{name}\" would be taken for the existing \"{other}\"; choose another name"),
    };
    if let Some(o) = same.into_iter().find(|o| confusable(name, o)) {
        return Err(taken(o));
    }
    if let Some(o) = others.into_iter().find(|o| folded(name) == folded(o)) {
        return Err(taken(o));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_something_else_are_refused() {
        assert!(check("sato").is_ok());
        assert!(check("佐藤 花子").is_ok());
        assert!(check("sa\u{200B}to").is_err());
        assert!(check("ad\u{202E}nimda").is_err());
        assert!(check("tab\there").is_err());
        assert!(check(" sato").is_err());
        assert!(check("").is_err());
        assert!(check(&"あ".repeat(65)).is_err());
        assert!(check(&"あ".repeat(64)).is_ok());
    }

    #[test]
    fn look_alikes_of_names_in_use_are_refused() {
        let users = ["sato", "admin"];
        let devices = ["kiosk-1"];
        assert!(check_new("SATO", users, devices).is_err());
        assert!(check_new("ｓａｔｏ", users, devices).is_err());
        assert!(check_new("sa to", users, devices).is_err());
        // The same account again is a change of that account, not a clash.
        assert!(check_new("sato", users, devices).is_ok());
        // An account may not take a device's name, in any case.
        assert!(check_new("kiosk-1", users, devices).is_err());
        assert!(check_new("KIOSK-1", users, devices).is_err());
        // And a device may not take an account's.
        assert!(check_new("admin", devices, users).is_err());
        assert!(check_new("suzuki", users, devices).is_ok());
        // Hyphens that read as '-' are the same name.
        let devices = ["standby-a"];
        for look in ["standby\u{2010}a", "standby\u{2013}a", "standby\u{2212}a"] {
            assert!(check_new(look, devices, users).is_err(), "{look}");
        }
    }
}
