//! Printing a ticket on a network thermal printer: ESC/POS over raw TCP
//! (port 9100), Japanese text in Shift_JIS with the printer's kanji mode,
//! the QR code with the printer's own QR command (R1, R2).
//!
//! The printer's status is asked before and after printing (DLE EOT, which
//! printers answer in real time): offline, cover open or out of paper is a
//! failed print, and the caller voids the ticket so that no phantom number
//! waits in the queue. The kiosk page asks the same status ([`status`])
//! whenever it refreshes, so a printer out of paper is on the kiosk's own
//! screen and in the fault records before a visitor touches a button.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Why a ticket did not print.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("the printer at {0} cannot be reached: {1}")]
    Unreachable(SocketAddr, std::io::Error),
    #[error("the printer is offline (status {0:#04x})")]
    Offline(u8),
    #[error("the printer is out of paper (status {0:#04x})")]
    PaperOut(u8),
    #[error("the printer's cover is open (status {0:#04x})")]
    CoverOpen(u8),
    #[error("the printer stopped answering: {0}")]
    Io(#[from] std::io::Error),
}

/// What goes on the ticket.
#[derive(Debug, Clone)]
pub struct TicketText {
    pub office: String,
    pub category: String,
    pub number: u32,
    /// e.g. "2026-11-26 08:31 発券 ・ 前に 3 人"
    pub meta: String,
    /// The wait recorded at issue, on its own line ([`wait_line`]).
    pub wait: String,
    pub url: String,
}

/// The ticket's wait line: 「予想待ち時間 およそ40分（30〜55分）」, or the
/// plain words for "soon" and "no estimate yet" (issue 19).
/// `kind` and `ja` are those of [`madoguchi_renderer::surfaces::WaitWords`].
pub fn wait_line(kind: &str, ja: &str) -> String {
    if kind == "range" {
        format!("予想待ち時間 {ja}")
    } else {
        ja.to_string()
    }
}

/// Shift_JIS as the printer reads it. The WAVE DASH of 「30〜55分」 has
/// no Shift_JIS mapping in the WHATWG tables (the encoder would print a
/// numeric stand-in on paper); JIS 0x8160 is the FULLWIDTH TILDE there,
/// the same glyph on the printer.
fn sjis(s: &str) -> Vec<u8> {
    let s = s.replace('\u{301c}', "\u{ff5e}");
    encoding_rs::SHIFT_JIS.encode(&s).0.into_owned()
}

/// The ESC/POS bytes of a ticket (80 mm, centred).
pub fn ticket_bytes(t: &TicketText) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0x1b, 0x40]); // ESC @: initialise
    b.extend_from_slice(&[0x1c, 0x43, 0x01]); // FS C 1: Shift_JIS kanji
    b.extend_from_slice(&[0x1c, 0x26]); // FS &: kanji mode on
    b.extend_from_slice(&[0x1b, 0x61, 0x01]); // ESC a 1: centre
    b.extend(sjis(&t.office));
    b.extend_from_slice(b"\n\n");
    b.extend_from_slice(&[0x1d, 0x21, 0x11]); // GS ! : double size
    b.extend(sjis(&t.category));
    b.extend_from_slice(b"\n");
    b.extend_from_slice(&[0x1d, 0x21, 0x55]); // six times
    b.extend(sjis(&t.number.to_string()));
    b.extend_from_slice(b"\n");
    b.extend_from_slice(&[0x1d, 0x21, 0x00]);
    b.extend(sjis(&t.meta));
    b.extend_from_slice(b"\n");
    if !t.wait.is_empty() {
        b.extend(sjis(&t.wait));
        b.extend_from_slice(b"\n");
    }
    b.extend_from_slice(b"\n");
    // QR code: model 2, module 6, error correction M, store, print.
    b.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
    b.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x43, 0x06]);
    b.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x45, 0x31]);
    let data = t.url.as_bytes();
    let len = data.len() + 3;
    b.extend_from_slice(&[
        0x1d,
        0x28,
        0x6b,
        (len & 0xff) as u8,
        (len >> 8) as u8,
        0x31,
        0x50,
        0x30,
    ]);
    b.extend_from_slice(data);
    b.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x51, 0x30]);
    b.extend_from_slice(b"\n");
    b.extend(sjis("QRコードで待ち状況を確認できます"));
    b.extend_from_slice(b"\n");
    b.extend_from_slice(&[0x1c, 0x2e]); // FS .: kanji mode off
    b.extend_from_slice(&[0x1d, 0x56, 0x42, 0x03]); // GS V B: feed and partial cut
    b
}

impl PrintError {
    /// Why, in plain Japanese for the kiosk's screen and the admin page.
    pub fn reason_ja(&self) -> &'static str {
        match self {
            PrintError::Unreachable(..) | PrintError::Io(_) => "プリンターにつながりません",
            PrintError::Offline(_) => "プリンターが止まっています",
            PrintError::PaperOut(_) => "プリンターの紙がなくなりました",
            PrintError::CoverOpen(_) => "プリンターのふたが開いています",
        }
    }
}

/// Asks the real-time status (DLE EOT 1: printer, DLE EOT 2: why offline,
/// DLE EOT 4: paper) and reads the three answers.
fn check(stream: &mut TcpStream) -> Result<(), PrintError> {
    stream.write_all(&[0x10, 0x04, 0x01, 0x10, 0x04, 0x02, 0x10, 0x04, 0x04])?;
    let mut answer = [0u8; 3];
    stream.read_exact(&mut answer)?;
    judge(answer)
}

/// The status bytes' meaning (Epson's ESC/POS reference): paper end in
/// the roll sensor (DLE EOT 4, bits 5–6) or stopping the printer (DLE EOT 2,
/// bit 5); the cover open (DLE EOT 2, bit 2); offline otherwise (DLE EOT
/// 1, bit 3).
fn judge([printer, cause, paper]: [u8; 3]) -> Result<(), PrintError> {
    if paper & 0x60 != 0 {
        return Err(PrintError::PaperOut(paper));
    }
    if cause & 0x20 != 0 {
        return Err(PrintError::PaperOut(cause));
    }
    if cause & 0x04 != 0 {
        return Err(PrintError::CoverOpen(cause));
    }
    if printer & 0x08 != 0 {
        return Err(PrintError::Offline(printer));
    }
    Ok(())
}

/// The printer's status now, without printing (short timeouts: the kiosk
/// page waits for it).
pub fn status(address: SocketAddr) -> Result<(), PrintError> {
    let quick = Duration::from_millis(800);
    let mut stream = TcpStream::connect_timeout(&address, quick)
        .map_err(|e| PrintError::Unreachable(address, e))?;
    stream.set_read_timeout(Some(quick))?;
    stream.set_write_timeout(Some(quick))?;
    check(&mut stream)
}

/// Prints the ticket, checking the printer before and after.
pub fn print(address: SocketAddr, t: &TicketText) -> Result<(), PrintError> {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .map_err(|e| PrintError::Unreachable(address, e))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    check(&mut stream)?;
    stream.write_all(&ticket_bytes(t))?;
    stream.flush()?;
    check(&mut stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bytes_name_paper_out_cover_open_and_offline() {
        assert!(judge([0x12, 0x12, 0x12]).is_ok());
        assert!(matches!(
            judge([0x12, 0x12, 0x72]),
            Err(PrintError::PaperOut(_))
        ));
        assert!(matches!(
            judge([0x1a, 0x32, 0x12]),
            Err(PrintError::PaperOut(_))
        ));
        assert!(matches!(
            judge([0x1a, 0x16, 0x12]),
            Err(PrintError::CoverOpen(_))
        ));
        assert!(matches!(
            judge([0x1a, 0x12, 0x12]),
            Err(PrintError::Offline(_))
        ));
    }

    #[test]
    fn the_ticket_is_shift_jis_with_a_qr_command() {
        let bytes = ticket_bytes(&TicketText {
            office: "区役所".into(),
            category: "住民異動の受付".into(),
            number: 1001,
            meta: "前に 3 人".into(),
            wait: "予想待ち時間 およそ40分（30〜55分）".into(),
            url: "https://example.jp/m#2026-11-26/1001".into(),
        });
        let sjis_category = encoding_rs::SHIFT_JIS
            .encode("住民異動の受付")
            .0
            .into_owned();
        assert!(bytes
            .windows(sjis_category.len())
            .any(|w| w == sjis_category.as_slice()));
        let url = b"https://example.jp/m#2026-11-26/1001";
        let store = [
            0x1d,
            0x28,
            0x6b,
            (url.len() + 3) as u8,
            0x00,
            0x31,
            0x50,
            0x30,
        ];
        let at = bytes
            .windows(store.len())
            .position(|w| w == store)
            .expect("QR store command");
        assert_eq!(&bytes[at + store.len()..at + store.len() + url.len()], url);
        assert!(bytes.ends_with(&[0x1d, 0x56, 0x42, 0x03]), "cut at the end");
    }

    /// The wait printed on the ticket (issue 19): the range, or plainly no
    /// estimate yet, in Shift_JIS without a stand-in character.
    #[test]
    fn the_ticket_prints_the_range_in_shift_jis() {
        use madoguchi_core::state::{Basis, WaitRange};
        use madoguchi_renderer::surfaces::wait_words;
        let range = WaitRange {
            point_s: 40 * 60,
            low_s: 30 * 60,
            high_s: 55 * 60,
        };
        for (words, basis) in [
            (range, Basis::Estimate),
            (range, Basis::LittleHistory),
            (range, Basis::NoCounterOpen),
            (WaitRange::default(), Basis::Estimate),
        ] {
            let w = wait_words(words, basis);
            let line = wait_line(w.kind, &w.ja);
            let (_, _, stand_ins) = encoding_rs::SHIFT_JIS.encode(&line.replace('〜', "～"));
            assert!(!stand_ins, "{line} has characters Shift_JIS lacks");
            let encoded = sjis(&line);
            assert!(!encoded.windows(2).any(|w| w == b"&#"), "no stand-in");
            let bytes = ticket_bytes(&TicketText {
                office: "区役所".into(),
                category: "戸籍の届出".into(),
                number: 3001,
                meta: "2026-11-26 08:31 発券 ・ 前に 3 人".into(),
                wait: line.clone(),
                url: "https://example.jp/m#2026-11-26/3001".into(),
            });
            assert!(
                bytes.windows(encoded.len()).any(|w| w == &encoded[..]),
                "{line} printed"
            );
        }
        let range_bytes = sjis(&wait_line("range", &wait_words(range, Basis::Estimate).ja));
        assert!(
            range_bytes.windows(2).any(|w| w == [0x81, 0x60]),
            "〜 is JIS 0x8160"
        );
        assert_eq!(
            wait_line("range", &wait_words(range, Basis::Estimate).ja),
            "予想待ち時間 およそ40分（30〜55分）"
        );
        assert_eq!(
            wait_line("none", &wait_words(range, Basis::LittleHistory).ja),
            "待ち時間の目安はまだお出しできません（本日の実績が少ないため）"
        );
    }
}
