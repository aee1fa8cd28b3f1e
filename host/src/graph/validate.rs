//! fbp's graph checks: every process has a component, every reference names a process.

use serde_json::Value;
use thiserror::Error;

use super::model::{Connection, Graph};

/// The first inconsistency found, in fbp's order and with fbp's wording, plus the
/// source line when the graph came from .fbp.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// A process was mentioned but never given a component.
    #[error("Node \"{process}\" does not have a component defined{}", at(.line))]
    MissingComponent { process: String, line: Option<u32> },
    /// An exported inport points at an undeclared process.
    #[error("Inport \"{public}\" is connected to an undefined target node \"{process}\"{}", at(.line))]
    UndefinedInportProcess {
        public: String,
        process: String,
        line: Option<u32>,
    },
    /// An exported outport points at an undeclared process.
    #[error("Outport \"{public}\" is connected to an undefined source node \"{process}\"{}", at(.line))]
    UndefinedOutportProcess {
        public: String,
        process: String,
        line: Option<u32>,
    },
    /// An IIP is sent to an undeclared process (`data` is the IIP as text).
    #[error("IIP containing \"{data}\" is connected to an undefined target node \"{process}\"{}", at(.line))]
    UndefinedIipTarget {
        data: String,
        process: String,
        line: Option<u32>,
    },
    /// An edge leads to an undeclared process.
    #[error(
        "Edge from \"{src_process}\" port \"{src_port}\" is connected to an undefined target node \"{process}\"{}",
        at(.line)
    )]
    UndefinedEdgeTarget {
        src_process: String,
        src_port: String,
        process: String,
        line: Option<u32>,
    },
    /// An edge comes from an undeclared process.
    #[error(
        "Edge to \"{tgt_process}\" port \"{tgt_port}\" is connected to an undefined source node \"{process}\"{}",
        at(.line)
    )]
    UndefinedEdgeSource {
        tgt_process: String,
        tgt_port: String,
        process: String,
        line: Option<u32>,
    },
}

impl ValidationError {
    /// The undeclared or incomplete process the error is about.
    pub fn process(&self) -> &str {
        match self {
            ValidationError::MissingComponent { process, .. }
            | ValidationError::UndefinedInportProcess { process, .. }
            | ValidationError::UndefinedOutportProcess { process, .. }
            | ValidationError::UndefinedIipTarget { process, .. }
            | ValidationError::UndefinedEdgeTarget { process, .. }
            | ValidationError::UndefinedEdgeSource { process, .. } => process,
        }
    }

    /// The source line, when the graph came from .fbp.
    pub fn line(&self) -> Option<u32> {
        match self {
            ValidationError::MissingComponent { line, .. }
            | ValidationError::UndefinedInportProcess { line, .. }
            | ValidationError::UndefinedOutportProcess { line, .. }
            | ValidationError::UndefinedIipTarget { line, .. }
            | ValidationError::UndefinedEdgeTarget { line, .. }
            | ValidationError::UndefinedEdgeSource { line, .. } => *line,
        }
    }
}

fn at(line: &Option<u32>) -> String {
    line.map(|line| format!(" (line {line})"))
        .unwrap_or_default()
}

/// JavaScript's `String(data)`, which fbp puts in its message.
fn data_text(data: &Value) -> String {
    match data {
        Value::String(text) => text.clone(),
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(n), _, _) => n.to_string(),
            (_, Some(n), _) => n.to_string(),
            (_, _, Some(f)) => js_float_text(f),
            _ => number.to_string(),
        },
        Value::Array(items) => items
            .iter()
            .map(|item| {
                if item.is_null() {
                    String::new()
                } else {
                    data_text(item)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_string(),
    }
}

/// JavaScript's `Number.prototype.toString()` for a finite float.
fn js_float_text(f: f64) -> String {
    let scientific = format!("{:e}", f.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (Ok(exponent), Ok(k)) = (exponent.parse::<i64>(), i64::try_from(digits.len())) else {
        return scientific;
    };
    let n = exponent + 1;
    let sign = if f < 0.0 { "-" } else { "" };
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or(0));
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", zeros(n - k))
    } else if 0 < n && n <= 21 {
        let (whole, fraction) = digits.split_at(usize::try_from(n).unwrap_or(0));
        format!("{whole}.{fraction}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", zeros(-n))
    } else {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exp_sign = if n - 1 < 0 { "-" } else { "+" };
        format!("{first}{point}{rest}e{exp_sign}{}", (n - 1).abs())
    };
    format!("{sign}{body}")
}

/// Checks a graph the way fbp does after parsing (`validateContents`).
pub fn validate(graph: &Graph) -> Result<(), ValidationError> {
    for (name, process) in &graph.processes {
        if process.component.is_empty() {
            return Err(ValidationError::MissingComponent {
                process: name.clone(),
                line: process.line,
            });
        }
    }
    for (public, export) in &graph.inports {
        if !graph.processes.contains_key(&export.process) {
            return Err(ValidationError::UndefinedInportProcess {
                public: public.clone(),
                process: export.process.clone(),
                line: export.line,
            });
        }
    }
    for (public, export) in &graph.outports {
        if !graph.processes.contains_key(&export.process) {
            return Err(ValidationError::UndefinedOutportProcess {
                public: public.clone(),
                process: export.process.clone(),
                line: export.line,
            });
        }
    }
    for connection in &graph.connections {
        match connection {
            Connection::Iip(iip) if !graph.processes.contains_key(&iip.tgt.process) => {
                return Err(ValidationError::UndefinedIipTarget {
                    data: data_text(&iip.data),
                    process: iip.tgt.process.clone(),
                    line: iip.line,
                });
            }
            Connection::Edge(edge) if !graph.processes.contains_key(&edge.tgt.process) => {
                return Err(ValidationError::UndefinedEdgeTarget {
                    src_process: edge.src.process.clone(),
                    src_port: edge.src.port.clone(),
                    process: edge.tgt.process.clone(),
                    line: edge.line,
                });
            }
            Connection::Edge(edge) if !graph.processes.contains_key(&edge.src.process) => {
                return Err(ValidationError::UndefinedEdgeSource {
                    tgt_process: edge.tgt.process.clone(),
                    tgt_port: edge.tgt.port.clone(),
                    process: edge.src.process.clone(),
                    line: edge.line,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
