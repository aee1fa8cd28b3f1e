//! guv's configuration format: role name -> role settings, with `'*'` defaults.
//!
//! A guv user can bring their `.guv.yaml` (or JSON) file unchanged:
//! - the top level maps role names to role settings; the special role `'*'` holds defaults
//!   that are copied into every role before the role's own keys apply;
//! - short names are normalised (`p` processing, `d` deadline, `min`, `max`, `w` worker,
//!   `q` queue) and guv's defaults fill in whatever is still missing;
//! - unknown keys are rejected with an error naming the role and the key (guv-validate's
//!   `banUnknownProperties`), which also catches js-yaml's `{p:60}` trap (a key `p:60`);
//! - guv's Heroku and statuspage keys (`app`, `apikey`, `dynosize`, `worker`, `statuspage`,
//!   `metric`, `broker`) are accepted and reported as unused ([`ConfigNote::Unused`]).
//!
//! Our changes to guv's meaning, all additive:
//! - `boot` is used: it is the instance start time in seconds that the deadline policy
//!   plans with when the host has not measured one;
//! - `pollinterval` and `history` are read from `'*'` only (as guv does); written on another
//!   role they are reported as unused; so is `watchinterval` (ours: how often the backlog
//!   of an externally scaled role is checked for pressure between polls, default 0.25 s,
//!   0 turns it off);
//! - `command` and `http` (ours) scale external workers instead of the host's instance
//!   pool: `command` is run by `sh -c` with `{role}` and `{count}` replaced, `http` is an
//!   `http://` or `https://` URL POSTed `{"role": .., "instances": ..}` (see [`super::actuator`]);
//! - a deadline that leaves no time for processing (guv's "Target … is lower than processing
//!   time") is kept, as guv does ("do our best"), and reported as
//!   [`ConfigNote::TargetBelowProcessing`]; [`ScalingConfig::check`] turns notes of that kind
//!   into errors, like `guv-validate`.

use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use super::queueing::normal_quantile;

/// The role whose keys are defaults for every other role.
pub const DEFAULTS_ROLE: &str = "*";

/// Keys guv knows that only matter to Heroku or statuspage.io; accepted, never used.
const UNUSED_KEYS: &[&str] = &[
    "app",
    "apikey",
    "dynosize",
    "worker",
    "statuspage",
    "metric",
    "broker",
];

/// A parsed, defaulted scaling configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    /// The roles in file order, without `'*'`.
    pub roles: Vec<RoleConfig>,
    /// Time between scaling decisions (`pollinterval`, from `'*'`; guv's default 30 s).
    pub poll_interval: Duration,
    /// How far back scale-down looks (`history`, from `'*'`; guv's default 120 s).
    pub history: Duration,
    /// How often an externally scaled role's backlog is checked for pressure between
    /// polls (`watchinterval`, ours, from `'*'`; default 0.25 s; zero: never).
    pub watch_interval: Duration,
    /// Keys accepted but unused, and guv's non-fatal problems.
    pub notes: Vec<ConfigNote>,
}

/// One role's settings after `'*'` defaults, short names and guv's defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleConfig {
    /// The role's name (the key in the file).
    pub name: String,
    /// Mean processing time of one job (`processing`, `p`; default 10 s).
    pub processing: Duration,
    /// Standard deviation of the processing time (`stddev`; default processing / 2).
    pub stddev: Duration,
    /// Time practically every job should finish within (`deadline`, `d`; default 60 s).
    pub deadline: Duration,
    /// Percentage of jobs that should meet the deadline (`percentile`; default 99).
    pub percentile: f64,
    /// guv's target time (`target`, or computed from deadline, percentile and stddev).
    pub target: Duration,
    /// Jobs one instance runs at once (`concurrency`; default 1).
    pub concurrency: u32,
    /// Fewest instances (`minimum`, `min`; default 1).
    pub minimum: u32,
    /// Most instances (`maximum`, `max`; default 5).
    pub maximum: u32,
    /// Instance start time (`boot`; default 30 s, guv's value).
    pub boot: Duration,
    /// Queue the role reads (`queue`, `q`; default the role name).
    pub queue: String,
    /// What carries out the decisions (`command`, `http`; default the host's pool).
    pub actuator: ActuatorConfig,
}

/// What carries out a role's scaling decisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActuatorConfig {
    /// The host's instance pool of the graph process of the same name.
    #[default]
    Pool,
    /// A command run by `sh -c`, `{role}` and `{count}` replaced (`command`).
    Command(String),
    /// An `http://` or `https://` endpoint POSTed `{"role": .., "instances": ..}` (`http`).
    Http(url::Url),
}

impl RoleConfig {
    /// A role with guv's defaults.
    pub fn with_defaults(name: &str) -> Self {
        let mut role = RoleConfig {
            name: name.to_owned(),
            processing: Duration::from_secs(10),
            stddev: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
            percentile: 99.0,
            target: Duration::ZERO,
            concurrency: 1,
            minimum: 1,
            maximum: 5,
            boot: Duration::from_secs(30),
            queue: name.to_owned(),
            actuator: ActuatorConfig::Pool,
        };
        role.target = secs(role.computed_target().0);
        role
    }

    /// guv's `calculateTarget`: `deadline − z_p·stddev`, and whether it had to be raised to
    /// `processing + 0.01 s` because it was not above the processing time.
    fn computed_target(&self) -> (f64, bool) {
        let tolerance = (100.0 - self.percentile) / 100.0;
        let distance = -normal_quantile(tolerance) * self.stddev.as_secs_f64();
        let target = self.deadline.as_secs_f64() - distance;
        let processing = self.processing.as_secs_f64();
        if target <= processing {
            (processing + 0.01, true)
        } else {
            (target, false)
        }
    }

    /// Jobs per second the role handles at `maximum` instances (guv's capacity figure).
    pub fn max_throughput(&self) -> f64 {
        f64::from(self.maximum) * f64::from(self.concurrency) / self.processing.as_secs_f64()
    }
}

/// Something accepted in a configuration that deserves a mention.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigNote {
    /// A key guv knows but wasmflo does not use.
    Unused {
        /// Role the key was written on (`*` for defaults).
        role: String,
        /// The key as written.
        key: String,
    },
    /// The deadline leaves no time for processing; guv's target was raised to processing.
    TargetBelowProcessing {
        /// The role.
        role: String,
        /// The target guv computed, in seconds.
        target: f64,
        /// The processing time, in seconds.
        processing: f64,
    },
}

impl std::fmt::Display for ConfigNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigNote::Unused { role, key } => {
                write!(
                    f,
                    "role '{role}': key '{key}' is accepted for guv compatibility but unused"
                )
            }
            ConfigNote::TargetBelowProcessing {
                role,
                target,
                processing,
            } => write!(
                f,
                "role '{role}': key 'deadline': target {target:.2} s is lower than processing time {processing} s"
            ),
        }
    }
}

/// Why a scaling configuration was rejected; every variant names what is wrong where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML (or JSON).
    #[error("not valid YAML or JSON")]
    Syntax(#[from] yaml_rust2::ScanError),
    /// Nothing in the file (guv: "empty").
    #[error("the configuration is empty")]
    Empty,
    /// The top level is not a mapping from role names to settings.
    #[error("the top level must map role names to role settings")]
    NotRoles,
    /// A role name is not a string.
    #[error("role names must be strings, found {found}")]
    RoleName {
        /// The offending name, as YAML.
        found: String,
    },
    /// A role's settings are not a mapping.
    #[error("role '{role}': settings must be a mapping of keys to values")]
    NotSettings {
        /// The role.
        role: String,
    },
    /// A key guv does not know.
    #[error("role '{role}': unknown key '{key}'")]
    UnknownKey {
        /// The role.
        role: String,
        /// The key as written.
        key: String,
    },
    /// A value of the wrong type or out of range.
    #[error("role '{role}': key '{key}' must be {expected}")]
    InvalidValue {
        /// The role.
        role: String,
        /// The key (long name).
        key: String,
        /// What the value should be.
        expected: &'static str,
    },
    /// `minimum` above `maximum`.
    #[error("role '{role}': key 'minimum' ({minimum}) is above 'maximum' ({maximum})")]
    MinimumAboveMaximum {
        /// The role.
        role: String,
        /// The minimum.
        minimum: u32,
        /// The maximum.
        maximum: u32,
    },
    /// Two keys that exclude each other on one role.
    #[error("role '{role}': keys '{key}' and '{other}' exclude each other")]
    Exclusive {
        /// The role.
        role: String,
        /// The later key.
        key: String,
        /// The earlier key.
        other: String,
    },
    /// A problem guv tolerates but `guv-validate` reports (see [`ScalingConfig::check`]).
    #[error("{0}")]
    Rejected(ConfigNote),
}

/// Every key a role may have, by long name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Processing,
    Stddev,
    Deadline,
    Percentile,
    Target,
    Concurrency,
    Minimum,
    Maximum,
    Boot,
    Queue,
    Command,
    Http,
    PollInterval,
    History,
    WatchInterval,
    Unused,
}

fn key_of(name: &str) -> Option<(Key, &str)> {
    let key = match name {
        "processing" | "p" => (Key::Processing, "processing"),
        "stddev" => (Key::Stddev, "stddev"),
        "deadline" | "d" => (Key::Deadline, "deadline"),
        "percentile" => (Key::Percentile, "percentile"),
        "target" => (Key::Target, "target"),
        "concurrency" => (Key::Concurrency, "concurrency"),
        "minimum" | "min" => (Key::Minimum, "minimum"),
        "maximum" | "max" => (Key::Maximum, "maximum"),
        "boot" => (Key::Boot, "boot"),
        "queue" | "q" => (Key::Queue, "queue"),
        "command" => (Key::Command, "command"),
        "http" => (Key::Http, "http"),
        "pollinterval" => (Key::PollInterval, "pollinterval"),
        "history" => (Key::History, "history"),
        "watchinterval" => (Key::WatchInterval, "watchinterval"),
        "worker" | "w" => (Key::Unused, "worker"),
        other => {
            let known = UNUSED_KEYS.iter().find(|k| **k == other)?;
            (Key::Unused, *known)
        }
    };
    Some(key)
}

impl ScalingConfig {
    /// Parses guv's YAML or JSON configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let docs = YamlLoader::load_from_str(text)?;
        let Some(doc) = docs.into_iter().next() else {
            if text.trim().is_empty() {
                return Err(ConfigError::Empty);
            }
            // Only comments: valid, no roles (guv's "only comments" case).
            return Ok(Self::from_roles(Vec::new(), &[]));
        };
        let entries = match doc {
            Yaml::Hash(hash) => hash,
            Yaml::Null => return Ok(Self::from_roles(Vec::new(), &[])),
            _ => return Err(ConfigError::NotRoles),
        };
        let mut defaults: Vec<(String, Yaml)> = Vec::new();
        let mut roles: Vec<(String, Vec<(String, Yaml)>)> = Vec::new();
        for (name, settings) in entries {
            let name = match name {
                Yaml::String(s) => s,
                Yaml::Integer(i) => i.to_string(),
                other => {
                    return Err(ConfigError::RoleName {
                        found: format!("{other:?}"),
                    });
                }
            };
            let settings = match settings {
                Yaml::Hash(hash) => {
                    let mut pairs = Vec::with_capacity(hash.len());
                    for (key, value) in hash {
                        let key = match key {
                            Yaml::String(s) => s,
                            other => format!("{other:?}"),
                        };
                        pairs.push((key, value));
                    }
                    pairs
                }
                Yaml::Null => Vec::new(),
                _ => return Err(ConfigError::NotSettings { role: name }),
            };
            if name == DEFAULTS_ROLE {
                defaults = settings;
            } else {
                roles.push((name, settings));
            }
        }
        let mut notes = Vec::new();
        // Check the defaults on their own so their errors and notes name '*'.
        let mut global = RoleConfig::with_defaults(DEFAULTS_ROLE);
        let mut timing = Timing::default();
        apply(
            &mut global,
            &mut timing,
            DEFAULTS_ROLE,
            &defaults,
            &mut notes,
            true,
        )?;
        let mut parsed = Vec::with_capacity(roles.len());
        for (name, settings) in roles {
            let mut role = RoleConfig::with_defaults(&name);
            let mut ignored = Timing::default();
            let mut no_notes = Vec::new();
            apply(
                &mut role,
                &mut ignored,
                &name,
                &defaults,
                &mut no_notes,
                true,
            )?;
            apply(&mut role, &mut ignored, &name, &settings, &mut notes, false)?;
            finish(&mut role, &settings, &defaults, &mut notes)?;
            parsed.push(role);
        }
        let mut config = Self::from_roles(parsed, &notes);
        config.poll_interval = timing.poll_interval;
        config.history = timing.history;
        config.watch_interval = timing.watch_interval;
        Ok(config)
    }

    fn from_roles(roles: Vec<RoleConfig>, notes: &[ConfigNote]) -> Self {
        let timing = Timing::default();
        ScalingConfig {
            roles,
            poll_interval: timing.poll_interval,
            history: timing.history,
            watch_interval: timing.watch_interval,
            notes: notes.to_vec(),
        }
    }

    /// The role called `name`.
    pub fn role(&self, name: &str) -> Option<&RoleConfig> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Like `guv-validate`: fails on the first problem guv would only report.
    pub fn check(&self) -> Result<(), ConfigError> {
        match self
            .notes
            .iter()
            .find(|n| matches!(n, ConfigNote::TargetBelowProcessing { .. }))
        {
            Some(note) => Err(ConfigError::Rejected(note.clone())),
            None => Ok(()),
        }
    }

    /// guv's number of remembered estimates: `floor(history / pollinterval)`.
    pub fn history_samples(&self) -> usize {
        let poll = self.poll_interval.as_secs_f64();
        if poll <= 0.0 {
            return 0;
        }
        (self.history.as_secs_f64() / poll).floor() as usize
    }
}

/// The global timing keys, read from `'*'` only.
#[derive(Debug, Clone, Copy)]
struct Timing {
    poll_interval: Duration,
    history: Duration,
    watch_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval: Duration::from_secs(30),
            history: Duration::from_secs(120),
            watch_interval: Duration::from_millis(250),
        }
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

fn number(value: &Yaml) -> Option<f64> {
    match value {
        Yaml::Integer(i) => Some(*i as f64),
        Yaml::Real(text) => text.parse::<f64>().ok(),
        _ => None,
    }
}

fn invalid(role: &str, key: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        role: role.to_owned(),
        key: key.to_owned(),
        expected,
    }
}

fn seconds(role: &str, key: &str, value: &Yaml, allow_zero: bool) -> Result<Duration, ConfigError> {
    match number(value) {
        Some(v) if v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) => {
            Duration::try_from_secs_f64(v)
                .map_err(|_| invalid(role, key, "a number of seconds below 2^64"))
        }
        _ if allow_zero => Err(invalid(role, key, "a number of seconds, 0 or more")),
        _ => Err(invalid(role, key, "a number of seconds above 0")),
    }
}

fn count(role: &str, key: &str, value: &Yaml, least: u32) -> Result<u32, ConfigError> {
    let n = match value {
        Yaml::Integer(i) => u32::try_from(*i).ok(),
        Yaml::Real(_) => number(value)
            .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= f64::from(u32::MAX))
            .map(|v| v as u32),
        _ => None,
    };
    match n {
        Some(n) if n >= least => Ok(n),
        _ if least == 0 => Err(invalid(role, key, "a whole number, 0 or more")),
        _ => Err(invalid(role, key, "a whole number, 1 or more")),
    }
}

fn text(role: &str, key: &str, value: &Yaml) -> Result<String, ConfigError> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        _ => Err(invalid(role, key, "a string")),
    }
}

/// A `command` template or an `http` URL.
fn actuator(role: &str, key: Key, long: &str, value: &Yaml) -> Result<ActuatorConfig, ConfigError> {
    let written = text(role, long, value)?;
    if key == Key::Command {
        if written.trim().is_empty() {
            return Err(invalid(role, long, "a command line"));
        }
        return Ok(ActuatorConfig::Command(written));
    }
    match url::Url::parse(&written) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(ActuatorConfig::Http(url))
        }
        _ => Err(invalid(role, long, "an http:// or https:// URL")),
    }
}

/// Applies `settings` (written on `written_on`) to `role`. `from_defaults` marks keys copied
/// from `'*'`, which are checked (and noted) once, on `'*'` itself.
fn apply(
    role: &mut RoleConfig,
    timing: &mut Timing,
    written_on: &str,
    settings: &[(String, Yaml)],
    notes: &mut Vec<ConfigNote>,
    from_defaults: bool,
) -> Result<(), ConfigError> {
    let at = if from_defaults {
        DEFAULTS_ROLE
    } else {
        written_on
    };
    let mut actuator_key: Option<&str> = None;
    for (name, value) in settings {
        let Some((key, long)) = key_of(name) else {
            return Err(ConfigError::UnknownKey {
                role: at.to_owned(),
                key: name.clone(),
            });
        };
        match key {
            Key::Processing => role.processing = seconds(at, long, value, false)?,
            Key::Stddev => role.stddev = seconds(at, long, value, true)?,
            Key::Deadline => role.deadline = seconds(at, long, value, false)?,
            Key::Percentile => {
                role.percentile = match number(value) {
                    Some(p) if p > 0.0 && p < 100.0 => p,
                    _ => return Err(invalid(at, long, "a percentage above 0 and below 100")),
                }
            }
            Key::Target => role.target = seconds(at, long, value, false)?,
            Key::Concurrency => role.concurrency = count(at, long, value, 1)?,
            Key::Minimum => role.minimum = count(at, long, value, 0)?,
            Key::Maximum => role.maximum = count(at, long, value, 1)?,
            Key::Boot => role.boot = seconds(at, long, value, true)?,
            Key::Queue => role.queue = text(at, long, value)?,
            Key::Command | Key::Http => {
                if let Some(other) = actuator_key.replace(long) {
                    return Err(ConfigError::Exclusive {
                        role: at.to_owned(),
                        key: long.to_owned(),
                        other: other.to_owned(),
                    });
                }
                role.actuator = actuator(at, key, long, value)?;
            }
            Key::PollInterval | Key::History | Key::WatchInterval => {
                let d = seconds(at, long, value, key == Key::WatchInterval)?;
                if at == DEFAULTS_ROLE {
                    match key {
                        Key::PollInterval => timing.poll_interval = d,
                        Key::History => timing.history = d,
                        _ => timing.watch_interval = d,
                    }
                } else {
                    notes.push(ConfigNote::Unused {
                        role: at.to_owned(),
                        key: long.to_owned(),
                    });
                }
            }
            Key::Unused => {
                // Strings only, as guv's schema says; then reported where written.
                text(at, long, value)?;
                notes.push(ConfigNote::Unused {
                    role: at.to_owned(),
                    key: long.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Derived values once a role's keys are known: stddev and target defaults, consistency.
fn finish(
    role: &mut RoleConfig,
    settings: &[(String, Yaml)],
    defaults: &[(String, Yaml)],
    notes: &mut Vec<ConfigNote>,
) -> Result<(), ConfigError> {
    let given = |wanted: Key| {
        settings
            .iter()
            .chain(defaults)
            .any(|(name, _)| key_of(name).is_some_and(|(k, _)| k == wanted))
    };
    if !given(Key::Stddev) {
        role.stddev = role.processing / 2;
    }
    if role.minimum > role.maximum {
        return Err(ConfigError::MinimumAboveMaximum {
            role: role.name.clone(),
            minimum: role.minimum,
            maximum: role.maximum,
        });
    }
    let processing = role.processing.as_secs_f64();
    let (target, raised) = if given(Key::Target) {
        let t = role.target.as_secs_f64();
        if t <= processing {
            (processing + 0.01, true)
        } else {
            (t, false)
        }
    } else {
        role.computed_target()
    };
    if raised {
        let computed = if given(Key::Target) {
            role.target.as_secs_f64()
        } else {
            let tolerance = (100.0 - role.percentile) / 100.0;
            role.deadline.as_secs_f64() + normal_quantile(tolerance) * role.stddev.as_secs_f64()
        };
        notes.push(ConfigNote::TargetBelowProcessing {
            role: role.name.clone(),
            target: computed,
            processing,
        });
    }
    role.target = secs(target);
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
