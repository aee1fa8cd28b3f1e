//! Foreign participants declared in MsgFlo's YAML format (`msgflo-register`): clients
//! that cannot announce themselves (a device on existing topics), described by a file
//! so that a coordinator sends their discovery on their behalf. Pure: parsing only.
//!
//! ```yaml
//! component: ProcessSomething
//! label: Does something       # optional, as are icon and id (default: the role)
//! inports:
//!   in: {queue: "process/#ROLE/in", type: any}
//! outports:
//!   out: {queue: "process/#ROLE/out", type: any, description: "the result"}
//! ```
//! Ports are a mapping keyed by port id, as `msgflo-register` reads them; `#ROLE` in a
//! queue is replaced by the role, so one file can serve several roles. A list of ports
//! is refused (msgflo-register would name them "0", "1", ...).

use yaml_rust2::{Yaml, YamlLoader};

use crate::discovery::{Participant, Port};

/// Why a foreign participant file is not usable. Each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ForeignError {
    /// Not YAML.
    #[error("not YAML: {0}")]
    Syntax(#[from] yaml_rust2::ScanError),
    /// The document is not a mapping.
    #[error("a foreign participant is a mapping with `component`, `inports`, `outports`")]
    NotMapping,
    /// `component` is missing or not a string.
    #[error("`component` is required (a string)")]
    NoComponent,
    /// A key has the wrong type.
    #[error("`{key}` must be {expected}")]
    Type {
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
    },
}

/// Reads a foreign participant of role `role` from MsgFlo's YAML `text`.
pub fn parse(text: &str, role: &str) -> Result<Participant, ForeignError> {
    let docs = YamlLoader::load_from_str(text)?;
    let Some(Yaml::Hash(doc)) = docs.into_iter().next() else {
        return Err(ForeignError::NotMapping);
    };
    let get = |key: &str| doc.get(&Yaml::String(key.into()));
    let text_of = |key: &str| -> Result<String, ForeignError> {
        match get(key) {
            None | Some(Yaml::Null) => Ok(String::new()),
            Some(Yaml::String(s)) => Ok(s.clone()),
            Some(_) => Err(ForeignError::Type {
                key: key.into(),
                expected: "a string",
            }),
        }
    };
    let component = text_of("component")?;
    if component.is_empty() {
        return Err(ForeignError::NoComponent);
    }
    let id = text_of("id")?;
    Ok(Participant {
        id: if id.is_empty() { role.to_string() } else { id },
        role: role.to_string(),
        component,
        label: text_of("label")?,
        icon: text_of("icon")?,
        inports: ports(get("inports"), "inports", role)?,
        outports: ports(get("outports"), "outports", role)?,
    })
}

fn ports(value: Option<&Yaml>, key: &str, role: &str) -> Result<Vec<Port>, ForeignError> {
    let hash = match value {
        None | Some(Yaml::Null) => return Ok(Vec::new()),
        Some(Yaml::Hash(h)) => h,
        Some(_) => {
            return Err(ForeignError::Type {
                key: key.into(),
                expected: "a mapping from port id to {queue, type}",
            });
        }
    };
    let mut out = Vec::new();
    for (id, port) in hash {
        let id = match id {
            Yaml::String(s) => s.clone(),
            Yaml::Integer(i) => i.to_string(),
            _ => {
                return Err(ForeignError::Type {
                    key: key.into(),
                    expected: "keyed by port names",
                });
            }
        };
        let field = |name: &str| -> Result<String, ForeignError> {
            match port {
                Yaml::Hash(h) => match h.get(&Yaml::String(name.into())) {
                    None | Some(Yaml::Null) => Ok(String::new()),
                    Some(Yaml::String(s)) => Ok(s.clone()),
                    Some(_) => Err(ForeignError::Type {
                        key: format!("{key}.{id}.{name}"),
                        expected: "a string",
                    }),
                },
                Yaml::Null => Ok(String::new()),
                _ => Err(ForeignError::Type {
                    key: format!("{key}.{id}"),
                    expected: "a mapping with `queue` and `type`",
                }),
            }
        };
        let type_ = field("type")?;
        out.push(Port {
            queue: field("queue")?.replace("#ROLE", role),
            type_: if type_.is_empty() {
                "any".into()
            } else {
                type_
            },
            description: field("description")?,
            id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_msgflo_register_yaml_with_role_substituted() {
        let text = "component: ProcessSomething\nlabel: x\n\
                    inports:\n  in:\n    queue: process/#ROLE/in\n    type: any\n\
                    outports:\n  out: {queue: process/#ROLE/out, type: object, description: d}\n";
        let p = parse(text, "A").unwrap();
        assert_eq!((p.id.as_str(), p.role.as_str()), ("A", "A"));
        assert_eq!(p.component, "ProcessSomething");
        assert_eq!(p.inport_queue("in"), Some("process/A/in"));
        assert_eq!(p.outport_queue("OUT"), Some("process/A/out"));
        assert_eq!(p.outports[0].type_, "object");
        assert_eq!(p.outports[0].description, "d");
    }

    #[test]
    fn refuses_what_msgflo_register_would_garble() {
        let list = "component: C\ninports:\n  - {id: in, queue: q}\n";
        let err = parse(list, "r").unwrap_err().to_string();
        assert!(err.contains("`inports` must be a mapping"), "{err}");
        assert!(matches!(
            parse("label: x\n", "r"),
            Err(ForeignError::NoComponent)
        ));
        assert!(matches!(parse("- 1\n", "r"), Err(ForeignError::NotMapping)));
    }
}
