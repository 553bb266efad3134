//! The settings form: the everyday changes — names, number ranges, colours
//! and service times of the queues; each counter's section, queues and call
//! order; the display message and seconds per page; extra opening days — as
//! fields instead of TOML. The form's values are written into the
//! configuration text in place (toml_edit keeps its comments and order),
//! and the result goes through the same validation and recording as the
//! TOML editor.

use serde::{Deserialize, Serialize};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use madoguchi_core::config::{CallPolicy, Config};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueForm {
    pub id: String,
    pub name_ja: String,
    #[serde(default)]
    pub name_en: String,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub colour: String,
    pub minutes: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterForm {
    pub number: u16,
    pub section: String,
    pub serves: Vec<String>,
    pub policy: CallPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDayForm {
    pub date: String,
    pub hours: String,
    pub name: String,
}

/// Everything the form shows and sends back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsForm {
    pub queues: Vec<QueueForm>,
    pub counters: Vec<CounterForm>,
    pub message_ja: String,
    #[serde(default)]
    pub message_en: String,
    pub seconds_per_page: u32,
    pub extra_days: Vec<ExtraDayForm>,
    /// The configuration the page showed ([`super::settings::version`]):
    /// a save from a page older than the configuration in force is
    /// refused, so a second tab never undoes the first one's change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub based_on: Option<String>,
}

impl SettingsForm {
    /// The form's view of a configuration.
    pub fn of(config: &Config) -> SettingsForm {
        SettingsForm {
            queues: config
                .queues
                .iter()
                .map(|q| QueueForm {
                    id: q.id.clone(),
                    name_ja: q.name.ja.clone(),
                    name_en: q.name.en.clone().unwrap_or_default(),
                    from: q.numbers.map(|r| r.from),
                    to: q.numbers.map(|r| r.to),
                    colour: q.colour.clone(),
                    minutes: q.typical_service_secs / 60.0,
                })
                .collect(),
            counters: config
                .counters
                .iter()
                .map(|c| CounterForm {
                    number: c.number,
                    section: c.section.clone(),
                    serves: c.serves.clone(),
                    policy: c.policy,
                })
                .collect(),
            message_ja: config
                .displays
                .message
                .as_ref()
                .map(|m| m.ja.clone())
                .unwrap_or_default(),
            message_en: config
                .displays
                .message
                .as_ref()
                .and_then(|m| m.en.clone())
                .unwrap_or_default(),
            seconds_per_page: config.displays.seconds_per_page,
            extra_days: config
                .calendar
                .extra
                .iter()
                .map(|x| ExtraDayForm {
                    date: x.date.to_string(),
                    hours: x.hours.to_string(),
                    name: x.name.clone(),
                })
                .collect(),
            based_on: None,
        }
    }
}

fn find_table<'a>(
    doc: &'a mut DocumentMut,
    array: &str,
    key: &str,
    want: &str,
) -> Result<&'a mut Table, String> {
    doc.get_mut(array)
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut().find(|t| {
                t.get(key).is_some_and(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_integer().map(|i| i.to_string()))
                        .as_deref()
                        == Some(want)
                })
            })
        })
        .ok_or_else(|| format!("{array}: {want} is not in the configuration"))
}

fn names(ja: &str, en: &str, old: Option<&Item>) -> InlineTable {
    // Keep the Chinese and Korean names the form does not show.
    let mut t = old
        .and_then(Item::as_inline_table)
        .cloned()
        .unwrap_or_default();
    t.insert("ja", ja.into());
    if en.trim().is_empty() {
        t.remove("en");
    } else {
        t.insert("en", en.into());
    }
    t
}

/// Writes the form's values into the configuration text.
pub fn apply(source: &str, form: &SettingsForm) -> Result<String, String> {
    let mut doc: DocumentMut = source
        .parse()
        .map_err(|e| format!("the configuration in force does not parse: {e}"))?;
    for q in &form.queues {
        let t = find_table(&mut doc, "queues", "id", &q.id)?;
        let n = names(&q.name_ja, &q.name_en, t.get("name"));
        t["name"] = value(n);
        if let (Some(from), Some(to)) = (q.from, q.to) {
            let mut r = InlineTable::new();
            r.insert("from", i64::from(from).into());
            r.insert("to", i64::from(to).into());
            t["numbers"] = value(r);
        }
        t["colour"] = value(q.colour.clone());
        if q.minutes.fract() == 0.0 && q.minutes.abs() < 1e6 {
            t["typical_service_minutes"] = value(q.minutes as i64);
        } else {
            t["typical_service_minutes"] = value(q.minutes);
        }
    }
    for c in &form.counters {
        let t = find_table(&mut doc, "counters", "number", &c.number.to_string())?;
        t["section"] = value(c.section.clone());
        let mut serves = Array::new();
        for q in &c.serves {
            serves.push(q.as_str());
        }
        t["serves"] = value(serves);
        match c.policy {
            CallPolicy::Strict => {
                t.remove("policy");
            }
            CallPolicy::LongestWait => t["policy"] = value("longest_wait"),
        }
    }
    if doc.get("displays").is_none() {
        doc["displays"] = Item::Table(Table::new());
    }
    let old_message = doc["displays"].get("message").cloned();
    if form.message_ja.trim().is_empty() {
        if let Some(t) = doc["displays"].as_table_mut() {
            t.remove("message");
        }
    } else {
        doc["displays"]["message"] = value(names(
            &form.message_ja,
            &form.message_en,
            old_message.as_ref(),
        ));
    }
    doc["displays"]["seconds_per_page"] = value(i64::from(form.seconds_per_page));
    let mut extra = ArrayOfTables::new();
    for x in &form.extra_days {
        let mut t = Table::new();
        t["name"] = value(x.name.clone());
        t["date"] = value(x.date.clone());
        t["hours"] = value(x.hours.clone());
        extra.push(t);
    }
    let calendar = doc
        .get_mut("calendar")
        .and_then(Item::as_table_mut)
        .ok_or("the configuration has no [calendar]")?;
    if extra.is_empty() {
        calendar.remove("extra");
    } else {
        calendar.insert("extra", Item::ArrayOfTables(extra));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_and_changes_only_what_it_says() {
        let config = Config::embedded_default();
        let form = SettingsForm::of(&config);
        let same = apply(&config.source, &form).expect("apply");
        let reparsed = Config::parse(&same, "t").expect("valid");
        assert_eq!(reparsed.queues, config.queues);
        assert_eq!(reparsed.counters, config.counters);
        assert!(
            same.contains("# Madoguchi — embedded default configuration."),
            "comments kept"
        );

        let mut form = form;
        form.queues[1].name_ja = "住民異動（転入・転出）".into();
        form.queues[1].to = Some(2999);
        form.counters[9].serves = vec!["idou".into(), "koufu".into()];
        form.counters[9].policy = CallPolicy::LongestWait;
        form.message_ja = "本日は混雑しています".into();
        form.seconds_per_page = 15;
        form.extra_days.push(ExtraDayForm {
            date: "2027-01-09".into(),
            hours: "08:30-17:00".into(),
            name: "緊急開庁".into(),
        });
        let changed =
            Config::parse(&apply(&config.source, &form).expect("apply"), "t").expect("valid");
        let idou = changed.queue("idou").expect("idou");
        assert_eq!(idou.name.ja, "住民異動（転入・転出）");
        assert_eq!(
            idou.name.zh.as_deref(),
            Some("住址变更受理"),
            "names the form does not show are kept"
        );
        assert_eq!(idou.numbers.map(|r| r.to), Some(2999));
        let c10 = changed.counter(10).expect("10");
        assert_eq!(c10.serves, ["idou", "koufu"]);
        assert_eq!(c10.policy, CallPolicy::LongestWait);
        assert_eq!(changed.displays.seconds_per_page, 15);
        assert_eq!(
            changed.displays.message.as_ref().map(|m| m.ja.as_str()),
            Some("本日は混雑しています")
        );
        let extra = chrono::NaiveDate::from_ymd_opt(2027, 1, 9).expect("date");
        assert_eq!(
            changed.calendar.opening(extra).map(|o| o.reason),
            Some("緊急開庁".to_string())
        );
    }
}
