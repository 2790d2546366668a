//! Section addresses, shared by the server and the client so both read
//! `Peer[PublicKey=abc]` the same way.
//!
//! | address | names |
//! |---|---|
//! | `` (empty) | the lines before the first header (all of an env file) |
//! | `NAME` | the one section called `NAME` (an error if there are several) |
//! | `NAME[INDEX]` | the INDEX-th section called `NAME`, counting from 0 |
//! | `NAME[KEY=VALUE]` | the one section called `NAME` whose `KEY` is exactly `VALUE` |
//!
//! On the command line a key is appended with a dot: `SECTION.KEY`; the
//! section part ends at the first dot outside brackets, so keys may contain
//! dots (`PHP.session.save_path`) and `.KEY` is a key outside any section.

use std::fmt;

use super::EditError;

/// How a section among those of one name is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// The only section of that name.
    None,
    /// By position among sections of that name, from 0.
    Index(usize),
    /// By an entry it contains.
    Match {
        /// The key to look at.
        key: String,
        /// Its exact value.
        value: String,
    },
}

/// Which section an operation works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionAddr {
    /// Section name; empty for the global part.
    pub name: String,
    /// Which of the sections of that name.
    pub selector: Selector,
}

impl SectionAddr {
    /// The part of a file before any header.
    pub(crate) fn global() -> Self {
        SectionAddr {
            name: String::new(),
            selector: Selector::None,
        }
    }

    /// True for the part before any header.
    pub(crate) fn is_global(&self) -> bool {
        self.name.is_empty()
    }

    /// Parses `NAME`, `NAME[INDEX]` or `NAME[KEY=VALUE]` (empty: global).
    pub(crate) fn parse(s: &str) -> Result<SectionAddr, EditError> {
        if s.contains(['\n', '\r', '\0']) {
            return Err(EditError::Invalid("a section address is one line".into()));
        }
        let Some(open) = s.find('[') else {
            if s.contains(']') {
                return Err(EditError::Invalid(format!("bad section address {s:?}")));
            }
            return Ok(SectionAddr {
                name: s.to_string(),
                selector: Selector::None,
            });
        };
        let name = s.get(..open).unwrap_or("");
        let inner = s
            .get(open + 1..)
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| {
                EditError::Invalid(format!(
                    "bad section address {s:?}: want NAME, NAME[INDEX] or NAME[KEY=VALUE]"
                ))
            })?;
        if name.is_empty() || name.contains(']') {
            return Err(EditError::Invalid(format!(
                "bad section address {s:?}: missing section name"
            )));
        }
        let selector = if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            Selector::Index(
                inner
                    .parse()
                    .map_err(|_| EditError::Invalid(format!("index too large in {s:?}")))?,
            )
        } else if let Some((k, v)) = inner.split_once('=') {
            let k = k.trim();
            super::check_key(k)?;
            Selector::Match {
                key: k.to_string(),
                value: v.trim().to_string(),
            }
        } else {
            return Err(EditError::Invalid(format!(
                "bad section address {s:?}: the brackets hold an index or KEY=VALUE"
            )));
        };
        Ok(SectionAddr {
            name: name.to_string(),
            selector,
        })
    }
}

impl fmt::Display for SectionAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_global() {
            return f.write_str("the global section");
        }
        f.write_str(&self.name)?;
        match &self.selector {
            Selector::None => Ok(()),
            Selector::Index(i) => write!(f, "[{i}]"),
            Selector::Match { key, value } => write!(f, "[{key}={value}]"),
        }
    }
}

/// Splits a command-line path `SECTION.KEY`, `SECTION`, `.KEY` into the
/// section address text and the key, at the first dot outside brackets.
/// Returns `(section, None)` when there is no dot.
pub(crate) fn parse_path(s: &str) -> (String, Option<String>) {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                let section = s.get(..i).unwrap_or("").to_string();
                let key = s.get(i + 1..).unwrap_or("").to_string();
                return (section, Some(key));
            }
            _ => {}
        }
    }
    (s.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert!(SectionAddr::parse("").unwrap().is_global());
        assert_eq!(
            SectionAddr::parse("Peer[2]").unwrap().selector,
            Selector::Index(2)
        );
        assert_eq!(
            SectionAddr::parse("Peer[PublicKey=ab+/c=]")
                .unwrap()
                .selector,
            Selector::Match {
                key: "PublicKey".into(),
                value: "ab+/c=".into()
            }
        );
        for bad in ["Peer[", "[1]", "Peer[x]", "Pe]er", "Peer[1]x", "a\nb"] {
            assert!(SectionAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SectionAddr::parse("Peer[PublicKey=k]").unwrap().to_string(),
            "Peer[PublicKey=k]"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("Peer[PublicKey=a.b=].AllowedIPs"),
            ("Peer[PublicKey=a.b=]".into(), Some("AllowedIPs".into()))
        );
        assert_eq!(
            parse_path("PHP.session.save_path"),
            ("PHP".into(), Some("session.save_path".into()))
        );
        assert_eq!(parse_path(".KEY"), ("".into(), Some("KEY".into())));
        assert_eq!(parse_path("Interface"), ("Interface".into(), None));
    }
}
