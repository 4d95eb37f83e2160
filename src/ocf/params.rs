//! Instance parameters: one table per agent is the single source for validation, defaults,
//! the command line and (checked by a unit test) the meta-data.
//!
//! Raw values come from `OCF_RESKEY_<name>` and, for operators at a shell, from
//! `--<name> <value>` flags; a flag wins over the environment. As in the shell agents'
//! `: ${OCF_RESKEY_x=${OCF_RESKEY_x_default}}`, an empty value counts as unset.

use std::collections::BTreeMap;

use super::error::AgentError;

/// The `<content type=…>` of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Free text (`type="string"`).
    String,
    /// A non-negative integer (`type="integer"`).
    Integer,
    /// `true`/`false` and the spellings `ocf_is_true` accepts (`type="boolean"`).
    Boolean,
    /// One of a fixed set of words (OCF 1.1 `type="select"`; declared as string in the 1.0 DTD).
    Select(&'static [&'static str]),
}

impl ParamType {
    /// The meta-data `type` attribute. Select is declared as `string` so that the meta-data
    /// stays valid against ra-api-1.dtd, which ocf-tester and pcs check.
    pub fn meta_type(self) -> &'static str {
        match self {
            ParamType::String | ParamType::Select(_) => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

/// One instance parameter of an agent.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Name, as in `OCF_RESKEY_<name>` and `--<name>`.
    pub name: &'static str,
    /// Value type, checked before any action runs.
    pub kind: ParamType,
    /// Default applied when the parameter is unset or empty.
    pub default: Option<&'static str>,
    /// `required="1"` in the meta-data: validation fails without it.
    pub required: bool,
    /// `unique="1"` in the meta-data: no two resources may share the value.
    pub unique: bool,
    /// One line for `--help`; the meta-data holds the full documentation.
    pub help: &'static str,
}

impl ParamSpec {
    /// An optional string parameter without default; refine with the builder methods.
    pub const fn new(name: &'static str, help: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            kind: ParamType::String,
            default: None,
            required: false,
            unique: false,
            help,
        }
    }
    /// Sets the type.
    pub const fn kind(mut self, kind: ParamType) -> ParamSpec {
        self.kind = kind;
        self
    }
    /// Sets the default.
    pub const fn default(mut self, default: &'static str) -> ParamSpec {
        self.default = Some(default);
        self
    }
    /// Marks the parameter required.
    pub const fn required(mut self) -> ParamSpec {
        self.required = true;
        self
    }
    /// Marks the parameter unique.
    pub const fn unique(mut self) -> ParamSpec {
        self.unique = true;
        self
    }
}

/// `ocf_is_true`'s spellings (case-insensitive): yes, true, on, y, 1.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "y" | "1" => Some(true),
        "no" | "false" | "off" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parameter values after defaults and type checks. Every getter is keyed by a name from the
/// agent's table; asking for a name that is not in it is a programming error reported as a
/// generic failure rather than a panic.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<&'static str, String>,
    explicit: BTreeMap<&'static str, bool>,
    table: &'static [ParamSpec],
}

impl Params {
    /// Collects the table's parameters from `env` (`OCF_RESKEY_<name>`) and `flags`
    /// (`--<name>`; these win), applies defaults, and checks types and `required`.
    /// The raw values are kept even when checking fails, so that `stop` and probes can
    /// still act on a partly valid configuration.
    pub fn collect(
        table: &'static [ParamSpec],
        env: &dyn Fn(&str) -> Option<String>,
        flags: &BTreeMap<String, String>,
    ) -> (Params, Result<(), AgentError>) {
        let mut params = Params {
            table,
            ..Params::default()
        };
        let mut first_error = Ok(());
        for spec in table {
            let raw = flags
                .get(spec.name)
                .cloned()
                .or_else(|| env(&format!("OCF_RESKEY_{}", spec.name)))
                .filter(|v| !v.is_empty());
            let explicit = raw.is_some();
            let Some(value) = raw.or_else(|| spec.default.map(str::to_owned)) else {
                if spec.required && first_error.is_ok() {
                    first_error = Err(AgentError::Configured(format!(
                        "parameter '{}' is required but not set",
                        spec.name
                    )));
                }
                continue;
            };
            if let Err(e) = check_type(spec, &value)
                && first_error.is_ok()
            {
                first_error = Err(e);
            }
            // Keep the raw text: stop may still find the resource by its other parameters.
            params.values.insert(spec.name, value);
            params.explicit.insert(spec.name, explicit);
        }
        (params, first_error)
    }

    /// Builds parameters from name/value pairs (tests, internal callers); same rules as `collect`.
    pub fn from_pairs(
        table: &'static [ParamSpec],
        pairs: &[(&str, &str)],
    ) -> Result<Params, AgentError> {
        let flags = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (params, checked) = Params::collect(table, &|_| None, &flags);
        checked.map(|()| params)
    }

    fn spec(&self, name: &str) -> Result<&ParamSpec, AgentError> {
        self.table
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| AgentError::Generic(format!("internal: no parameter named '{name}'")))
    }

    /// The value (explicit or default), if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// True when the operator set the value rather than the default supplying it.
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.get(name).copied().unwrap_or(false)
    }

    /// A required string (validation already ensured presence).
    pub fn required_str(&self, name: &str) -> Result<&str, AgentError> {
        self.spec(name)?;
        self.get(name).ok_or_else(|| {
            AgentError::Configured(format!("parameter '{name}' is required but not set"))
        })
    }

    /// A boolean; false when unset without default.
    pub fn bool(&self, name: &str) -> Result<bool, AgentError> {
        self.spec(name)?;
        match self.get(name) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| bad_value(name, v, "a boolean")),
        }
    }

    /// An unsigned integer, if set.
    pub fn u64_opt(&self, name: &str) -> Result<Option<u64>, AgentError> {
        self.spec(name)?;
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad_value(name, v, "a non-negative integer"))
            })
            .transpose()
    }

    /// An unsigned integer that must be set (by the operator or the default).
    pub fn u64(&self, name: &str) -> Result<u64, AgentError> {
        self.u64_opt(name)?.ok_or_else(|| {
            AgentError::Configured(format!("parameter '{name}' is required but not set"))
        })
    }
}

fn bad_value(name: &str, value: &str, expected: &str) -> AgentError {
    AgentError::Configured(format!(
        "parameter '{name}' must be {expected}, not '{value}'"
    ))
}

fn check_type(spec: &ParamSpec, value: &str) -> Result<(), AgentError> {
    match spec.kind {
        ParamType::String => Ok(()),
        ParamType::Integer => value
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| bad_value(spec.name, value, "a non-negative integer")),
        ParamType::Boolean => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| bad_value(spec.name, value, "a boolean (true/false)")),
        ParamType::Select(choices) => {
            if choices.contains(&value) {
                Ok(())
            } else {
                Err(bad_value(
                    spec.name,
                    value,
                    &format!("one of {}", choices.join(", ")),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::OcfRc;

    static TABLE: &[ParamSpec] = &[
        ParamSpec::new("ip", "address").required().unique(),
        ParamSpec::new("count", "n")
            .kind(ParamType::Integer)
            .default("5"),
        ParamSpec::new("flag", "b")
            .kind(ParamType::Boolean)
            .default("false"),
        ParamSpec::new("mode", "m")
            .kind(ParamType::Select(&["a", "b"]))
            .default("a"),
    ];

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let env = env_of(&[("OCF_RESKEY_ip", "1.2.3.4"), ("OCF_RESKEY_count", "")]);
        let (p, ok) = Params::collect(TABLE, &env, &BTreeMap::new());
        ok.unwrap();
        assert_eq!(p.u64("count").unwrap(), 5);
        assert!(!p.is_explicit("count"));
        assert!(p.is_explicit("ip"));
        assert!(!p.bool("flag").unwrap());
        assert_eq!(p.get("mode"), Some("a"));
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = env_of(&[("OCF_RESKEY_ip", "1.2.3.4")]);
        let flags = BTreeMap::from([("ip".to_string(), "5.6.7.8".to_string())]);
        let (p, ok) = Params::collect(TABLE, &env, &flags);
        ok.unwrap();
        assert_eq!(p.get("ip"), Some("5.6.7.8"));
    }

    #[test]
    fn missing_required_parameter_is_err_configured() {
        let (_, ok) = Params::collect(TABLE, &|_| None, &BTreeMap::new());
        let err = ok.unwrap_err();
        assert_eq!(err.rc(), OcfRc::ErrConfigured);
        assert!(err.reason().contains("'ip'"), "{err}");
    }

    #[test]
    fn type_errors_are_err_configured_and_keep_raw_values() {
        for (name, bad) in [
            ("count", "-1"),
            ("count", "5x"),
            ("flag", "maybe"),
            ("mode", "c"),
        ] {
            let flags = BTreeMap::from([
                ("ip".to_string(), "1.2.3.4".to_string()),
                (name.to_string(), bad.to_string()),
            ]);
            let (p, ok) = Params::collect(TABLE, &|_| None, &flags);
            assert_eq!(ok.unwrap_err().rc(), OcfRc::ErrConfigured, "{name}={bad}");
            assert_eq!(p.get("ip"), Some("1.2.3.4"));
        }
    }

    #[test]
    fn booleans_accept_ocf_is_true_spellings() {
        for t in ["yes", "TRUE", "on", "y", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["no", "False", "off", "n", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn unknown_names_are_an_error_not_a_panic() {
        let p = Params::from_pairs(TABLE, &[("ip", "x")]).unwrap();
        assert_eq!(p.bool("nope").unwrap_err().rc(), OcfRc::ErrGeneric);
    }
}
