//! `p_`: named option sets from the configuration, and the rules a site
//! can put on URLs (`presets_only`, `allowed_sizes`).
//!
//! A preset is an options segment with a name (`thumb = "w_150,h_150,
//! fit_cover"`); `p_thumb` in a URL stands for it, and options written
//! beside it override its own (`p_thumb,f_webp`). With `presets_only`,
//! a URL may name presets and nothing else, so the set of derivatives is
//! the sysadmin's list. With `allowed_sizes`, a URL that writes `w_` or
//! `h_` itself must ask for one of the listed sizes.

use std::collections::BTreeMap;

use super::{OptionError, Options};

/// A size a URL may ask for: `300x200`, `300x` (width only), `x200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedSize {
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl AllowedSize {
    pub fn parse(text: &str) -> Option<AllowedSize> {
        let (w, h) = text.split_once('x')?;
        let side = |s: &str| -> Option<Option<u32>> {
            if s.is_empty() {
                return Some(None);
            }
            s.parse().ok().filter(|n| *n > 0).map(Some)
        };
        let size = AllowedSize { width: side(w)?, height: side(h)? };
        (size.width.is_some() || size.height.is_some()).then_some(size)
    }
}

/// What a URL's options may be.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub max_side: u32,
    pub presets: BTreeMap<String, String>,
    pub presets_only: bool,
    pub allowed_sizes: Vec<AllowedSize>,
}

impl Rules {
    /// No presets, no restrictions but the largest side.
    pub fn plain(max_side: u32) -> Rules {
        Rules { max_side, ..Rules::default() }
    }

    pub fn from_config(config: &crate::config::Config) -> Rules {
        Rules {
            max_side: config.max_output_side,
            presets: config.presets.clone(),
            presets_only: config.presets_only,
            allowed_sizes: config
                .allowed_sizes
                .iter()
                .filter_map(|s| AllowedSize::parse(s))
                .collect(),
        }
    }

    /// Checks the configured presets and sizes, for `check-config`.
    pub fn check(&self, sizes: &[String]) -> Result<(), String> {
        for (name, options) in &self.presets {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!(
                    "presets: {name:?}: names are letters, digits and '-'"
                ));
            }
            if options.split(',').any(|item| item.starts_with("p_")) {
                return Err(format!(
                    "presets: {name}: a preset cannot name another"
                ));
            }
            // Nginx picks negotiated files by the f_auto written in the
            // URL; inside a preset it cannot see it.
            if options.split(',').any(|item| item == "f_auto") {
                return Err(format!(
                    "presets: {name}: f_auto cannot be in a preset; write it \
                     in the URL beside p_{name}"
                ));
            }
            Options::parse_with(options, &Rules::plain(self.max_side))
                .map_err(|err| format!("presets: {name}: {err}"))?;
        }
        for size in sizes {
            if AllowedSize::parse(size).is_none() {
                return Err(format!(
                    "allowed_sizes: {size:?} is not WxH, Wx or xH (such as \"300x200\")"
                ));
            }
        }
        if self.presets_only && self.presets.is_empty() {
            return Err("presets_only: true, but there are no presets".into());
        }
        Ok(())
    }

    /// The preset's options, for `p_<name>`.
    pub(super) fn preset(&self, name: &str) -> Result<&str, OptionError> {
        self.presets.get(name).map(String::as_str).ok_or_else(|| {
            OptionError::new("p", format!("no preset named {name:?}"))
        })
    }

    /// Refuses explicit sizes that are not on the list.
    pub(super) fn check_size(
        &self,
        options: &Options,
    ) -> Result<(), OptionError> {
        if self.allowed_sizes.is_empty() {
            return Ok(());
        }
        let asked = AllowedSize {
            width: options.resize.width,
            height: options.resize.height,
        };
        if self.allowed_sizes.contains(&asked) {
            return Ok(());
        }
        let side =
            |s: Option<u32>| s.map(|n| n.to_string()).unwrap_or_default();
        Err(OptionError::new(
            "w/h",
            format!(
                "{}x{} is not one of the allowed sizes",
                side(asked.width),
                side(asked.height)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::output::{Format, FormatChoice};
    use crate::transform::resize::Fit;

    fn rules() -> Rules {
        let mut presets = BTreeMap::new();
        presets
            .insert("thumb".to_string(), "w_150,h_150,fit_cover".to_string());
        Rules { max_side: 4096, presets, ..Rules::default() }
    }

    #[test]
    fn a_preset_stands_for_its_options_and_yields_to_explicit_ones() {
        let options =
            Options::parse_with("p_thumb,f_webp,w_100", &rules()).unwrap();
        assert_eq!(options.resize.width, Some(100));
        assert_eq!(options.resize.height, Some(150));
        assert_eq!(options.resize.fit, Fit::Cover);
        assert_eq!(options.output.format, FormatChoice::Fixed(Format::Webp));
        let err = Options::parse_with("p_big", &rules()).unwrap_err();
        assert_eq!(err.to_string(), "p: no preset named \"big\"");
    }

    #[test]
    fn presets_only_refuses_everything_else() {
        let rules = Rules { presets_only: true, ..rules() };
        assert!(Options::parse_with("p_thumb", &rules).is_ok());
        let err = Options::parse_with("p_thumb,w_10", &rules).unwrap_err();
        assert_eq!(err.to_string(), "w: only presets (p_<name>) are allowed");
    }

    #[test]
    fn an_underscore_alone_is_no_options_unless_presets_only() {
        assert_eq!(
            Options::parse_with("_", &rules()).unwrap(),
            Options::default()
        );
        let only = Rules { presets_only: true, ..rules() };
        assert!(Options::parse_with("_", &only).is_err());
    }

    #[test]
    fn allowed_sizes_bind_sizes_written_in_the_url() {
        let rules = Rules {
            allowed_sizes: vec![AllowedSize::parse("300x").unwrap()],
            ..rules()
        };
        assert!(Options::parse_with("w_300,f_webp", &rules).is_ok());
        assert!(
            Options::parse_with("p_thumb", &rules).is_ok(),
            "presets are the sysadmin's"
        );
        let err = Options::parse_with("w_301", &rules).unwrap_err();
        assert_eq!(
            err.to_string(),
            "w/h: 301x is not one of the allowed sizes"
        );
    }

    #[test]
    fn sizes_and_presets_are_checked_at_start() {
        assert_eq!(
            AllowedSize::parse("x200"),
            Some(AllowedSize { width: None, height: Some(200) })
        );
        assert_eq!(AllowedSize::parse("x"), None);
        assert!(rules().check(&["300y".into()]).is_err());
        let mut bad = rules();
        bad.presets.insert("loop".into(), "p_thumb".into());
        assert!(bad.check(&[]).is_err());
        bad.presets.insert("loop".into(), "w_0".into());
        assert!(bad.check(&[]).unwrap_err().starts_with("presets: loop: w:"));
        bad.presets.insert("loop".into(), "w_10,f_auto".into());
        assert!(
            bad.check(&[])
                .unwrap_err()
                .contains("f_auto cannot be in a preset")
        );
    }
}
