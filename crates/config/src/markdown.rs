//! The key table rendered for people: `strom server --help-config`, and the key tables of
//! docs/configuration.md (between `<!-- keys:NAME -->` and `<!-- /keys -->` markers), which a
//! unit test keeps equal to the table.

use crate::keys::{DefaultValue, Key, Section, KEYS};

fn default_text(k: &Key) -> String {
    match k.default {
        DefaultValue::Value("") => "empty".to_string(),
        DefaultValue::Value(v) => format!("`{v}`"),
        DefaultValue::From(other) => format!("from `{other}`"),
        DefaultValue::Unset(text) => text.to_string(),
    }
}

/// One generated block of docs/configuration.md, by its marker name.
fn block(name: &str) -> Option<String> {
    let section = match name {
        "broker" => Section::Broker,
        "groups" => Section::Groups,
        "transactions" => Section::Transactions,
        "cluster" => Section::Cluster,
        "replication" => Section::Replication,
        "security" => Section::Security,
        "dynamic" => {
            let names: Vec<String> = KEYS.iter().filter(|k| k.dynamic).map(|k| format!("`{}`", k.name)).collect();
            return Some(format!("{}.\n", names.join(", ")));
        }
        "topic" => {
            let mut out = String::from("| key | broker default |\n|---|---|\n");
            for k in KEYS {
                match k.topic {
                    Some(t) if k.topic_only => out.push_str(&format!("| `{t}` | none: a topic config only |\n")),
                    Some(t) => out.push_str(&format!("| `{t}` | `{}` |\n", k.name)),
                    None => {}
                }
            }
            return Some(out);
        }
        "group" => {
            let mut out = String::from("| key | broker default |\n|---|---|\n");
            for k in KEYS {
                if let Some(g) = k.group {
                    out.push_str(&format!("| `{g}` | `{}` |\n", k.name));
                }
            }
            return Some(out);
        }
        _ => return None,
    };
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for k in KEYS.iter().filter(|k| k.section == section) {
        let topic = k.topic.filter(|_| !k.topic_only).map(|t| format!(" (topic: `{t}`)")).unwrap_or_default();
        let group = k.group.map(|g| format!(" (group: `{g}`)")).unwrap_or_default();
        out.push_str(&format!("| `{}` | {} | {}{topic}{group} |\n", k.name, default_text(k), k.doc));
    }
    Some(out)
}

/// `doc` with every generated block replaced by what the table says now.
pub fn markdown_tables(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(start) = rest.find("<!-- keys:") {
        let Some(name_end) = rest[start..].find(" -->").map(|i| start + i) else { break };
        let name = &rest[start + "<!-- keys:".len()..name_end];
        let Some(end) = rest[name_end..].find("<!-- /keys -->").map(|i| name_end + i) else { break };
        out.push_str(&rest[..name_end + " -->\n".len()]);
        out.push_str(&block(name).unwrap_or_else(|| format!("(no generated block named {name})\n")));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `strom server --help-config`: every key, its default and its meaning.
pub fn help_text() -> String {
    let mut out = String::new();
    for k in KEYS {
        let default = match k.default {
            DefaultValue::Value(v) => v.to_string(),
            DefaultValue::From(other) => format!("(from {other})"),
            DefaultValue::Unset(text) => format!("({text})"),
        };
        let scope = match (k.topic, k.dynamic) {
            (Some(_), _) if k.topic_only => " [topic config only]".to_string(),
            (Some(t), true) => format!(" [topic: {t}; dynamic]"),
            (Some(t), false) => format!(" [topic: {t}]"),
            (None, true) => " [dynamic]".to_string(),
            (None, false) => String::new(),
        };
        let scope = match k.group {
            Some(g) => format!("{scope} [group: {g}]"),
            None => scope,
        };
        out.push_str(&format!("{:<40} {:<28} {}{}\n", k.name, default, k.doc.replace('`', ""), scope));
    }
    out
}

#[cfg(test)]
mod tests {
    /// docs/configuration.md is the user's reference: its key tables are the table's rendering.
    /// After changing a key, regenerate them with `STROM_BLESS=1 cargo test -p strom-config`.
    #[test]
    fn docs_configuration_md_shows_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
        let fresh = super::markdown_tables(&doc);
        if std::env::var_os("STROM_BLESS").is_some() {
            std::fs::write(path, &fresh).expect("writing docs/configuration.md");
            return;
        }
        assert!(doc == fresh, "docs/configuration.md is out of date with the key table: run `STROM_BLESS=1 cargo test -p strom-config`");
        for block in ["broker", "groups", "cluster", "replication", "dynamic", "topic", "group"] {
            assert!(doc.contains(&format!("<!-- keys:{block} -->")), "docs/configuration.md lacks the {block} block");
        }
    }
}
