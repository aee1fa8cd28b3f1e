//! The signature tree a workflow expression denotes, with Celery's partial application,
//! its canonical expression text ([`std::fmt::Display`]) and Celery's JSON dict form.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value, json};

/// One task call: `add(4, 4)` (partial) or `add.si(4, 4)` (immutable).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    /// The task (role) name.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Immutable signatures ignore the previous result in a chain.
    pub immutable: bool,
}

/// A workflow: Celery's Canvas primitives over task calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    /// One task call.
    Task(TaskCall),
    /// Each step's result is given to the next; the result is the last step's.
    Chain(Vec<Signature>),
    /// Members run in parallel; the result is their results in call order.
    Group(Vec<Signature>),
    /// A group, then `body` called with the list of its results.
    Chord {
        /// The group.
        header: Vec<Signature>,
        /// The callback.
        body: Box<Signature>,
    },
    /// `task(item)` for each item, results in order (Celery's `xmap`).
    Map {
        /// The task name.
        task: String,
        /// One argument per call.
        items: Vec<Value>,
    },
    /// `task(*item)` for each item (Celery's `xstarmap`); every item is a list.
    Starmap {
        /// The task name.
        task: String,
        /// One argument list per call.
        items: Vec<Value>,
    },
    /// A group of starmaps over consecutive chunks of `size` items: a list of lists.
    Chunks {
        /// The task name.
        task: String,
        /// One argument list per call.
        items: Vec<Value>,
        /// Items per chunk (at least 1).
        size: usize,
    },
}

/// Why a signature (from JSON, or built by hand) is not a valid workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SignatureError {
    /// Where: a JSON path such as `$.kwargs.tasks[1]`.
    pub path: String,
    /// What is wrong, or what was expected.
    pub problem: String,
}

impl Signature {
    /// A partial task call with positional arguments.
    pub fn task(name: &str, args: Vec<Value>) -> Signature {
        Signature::Task(TaskCall {
            name: name.to_string(),
            args,
            kwargs: Map::new(),
            immutable: false,
        })
    }

    /// This signature given a previous step's `result`, as Celery applies it: a partial
    /// task gets it prepended to its arguments; a chain passes it to its first step; a
    /// group and a chord's header pass it to every member; immutable signatures, map,
    /// starmap and chunks (immutable in Celery) ignore it.
    pub fn prepend(self, result: Value) -> Signature {
        match self {
            Signature::Task(mut call) if !call.immutable => {
                call.args.insert(0, result);
                Signature::Task(call)
            }
            Signature::Chain(mut steps) => {
                if let Some(first) = steps.first_mut() {
                    let taken = std::mem::replace(first, Signature::Group(Vec::new()));
                    *first = taken.prepend(result);
                }
                Signature::Chain(steps)
            }
            Signature::Group(members) => Signature::Group(prepend_all(members, &result)),
            Signature::Chord { header, body } => Signature::Chord {
                header: prepend_all(header, &result),
                body,
            },
            other => other,
        }
    }

    /// Every task name the workflow calls, sorted.
    pub fn task_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        self.collect_names(&mut names);
        names
    }

    fn collect_names(&self, names: &mut BTreeSet<String>) {
        match self {
            Signature::Task(call) => {
                names.insert(call.name.clone());
            }
            Signature::Chain(s) | Signature::Group(s) => {
                s.iter().for_each(|s| s.collect_names(names));
            }
            Signature::Chord { header, body } => {
                header.iter().for_each(|s| s.collect_names(names));
                body.collect_names(names);
            }
            Signature::Map { task, .. }
            | Signature::Starmap { task, .. }
            | Signature::Chunks { task, .. } => {
                names.insert(task.clone());
            }
        }
    }

    /// Checks what the types cannot: chains are not empty, starmap and chunks items are
    /// lists, chunk sizes are at least 1, task names are identifiers.
    pub fn validate(&self) -> Result<(), SignatureError> {
        self.validate_at("$")
    }

    fn validate_at(&self, path: &str) -> Result<(), SignatureError> {
        let err = |problem: String| SignatureError {
            path: path.to_string(),
            problem,
        };
        let check_name = |name: &str| {
            if is_identifier(name) {
                Ok(())
            } else {
                Err(err(format!(
                    "task name '{name}' is not an identifier (letters, digits, '_', '-')"
                )))
            }
        };
        match self {
            Signature::Task(call) => check_name(&call.name),
            Signature::Chain(steps) if steps.is_empty() => {
                Err(err("a chain needs at least one step".into()))
            }
            Signature::Chain(s) | Signature::Group(s) => s
                .iter()
                .enumerate()
                .try_for_each(|(i, s)| s.validate_at(&format!("{path}[{i}]"))),
            Signature::Chord { header, body } => {
                for (i, s) in header.iter().enumerate() {
                    s.validate_at(&format!("{path}.header[{i}]"))?;
                }
                body.validate_at(&format!("{path}.body"))
            }
            Signature::Map { task, .. } => check_name(task),
            Signature::Starmap { task, items } | Signature::Chunks { task, items, .. } => {
                check_name(task)?;
                if let Signature::Chunks { size: 0, .. } = self {
                    return Err(err("the chunk size must be at least 1".into()));
                }
                match items.iter().position(|i| !i.is_array()) {
                    Some(i) => Err(err(format!(
                        "item {i} ({}) is not a list of arguments",
                        items[i]
                    ))),
                    None => Ok(()),
                }
            }
        }
    }
}

fn prepend_all(members: Vec<Signature>, result: &Value) -> Vec<Signature> {
    members
        .into_iter()
        .map(|m| m.prepend(result.clone()))
        .collect()
}

/// Names of the expression language's built-in forms; no task may use one.
pub const RESERVED: &[&str] = &[
    "chain", "group", "chord", "map", "starmap", "chunks", "range", "zip",
];

/// Whether `name` can name a task: `[A-Za-z_][A-Za-z0-9_-]*`, not a built-in form.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.contains(&name)
}

impl fmt::Display for TaskCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = if self.immutable { ".si" } else { "" };
        write!(f, "{}{method}(", self.name)?;
        let mut first = true;
        for a in &self.args {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{a}")?;
        }
        for (k, v) in &self.kwargs {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        f.write_str(")")
    }
}

/// The canonical expression text; [`crate::workflow::parse`] reads it back to an equal tree.
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, s: &[Signature]| -> fmt::Result {
            for (i, s) in s.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{s}")?;
            }
            Ok(())
        };
        match self {
            Signature::Task(call) => write!(f, "{call}"),
            Signature::Chain(s) => {
                f.write_str("chain(")?;
                list(f, s)?;
                f.write_str(")")
            }
            Signature::Group(s) => {
                f.write_str("group(")?;
                list(f, s)?;
                f.write_str(")")
            }
            Signature::Chord { header, body } => {
                f.write_str("chord(group(")?;
                list(f, header)?;
                write!(f, "), {body})")
            }
            Signature::Map { task, items } => {
                write!(f, "map({task}, {})", Value::from(items.clone()))
            }
            Signature::Starmap { task, items } => {
                write!(f, "starmap({task}, {})", Value::from(items.clone()))
            }
            Signature::Chunks { task, items, size } => {
                write!(f, "chunks({task}, {}, {size})", Value::from(items.clone()))
            }
        }
    }
}

/// Celery's dict form of a signature (what `json.dumps(sig)` gives in Python).
impl Signature {
    /// The signature as Celery's dict: `{"task", "args", "kwargs", "options",
    /// "subtask_type", "immutable"}`; canvas types keep their parts in `kwargs`.
    pub fn to_json(&self) -> Value {
        let canvas = |name: &str, kind: &str, kwargs: Value| {
            json!({"task": name, "args": [], "kwargs": kwargs, "options": {},
                   "subtask_type": kind, "immutable": false})
        };
        let bare = |task: &str| {
            json!({"task": task, "args": [], "kwargs": {}, "options": {},
                                       "subtask_type": null, "immutable": false})
        };
        let all =
            |s: &[Signature]| Value::from(s.iter().map(Signature::to_json).collect::<Vec<_>>());
        match self {
            Signature::Task(c) => json!({"task": c.name, "args": c.args, "kwargs": c.kwargs,
                "options": {}, "subtask_type": null, "immutable": c.immutable}),
            Signature::Chain(s) => canvas("celery.chain", "chain", json!({"tasks": all(s)})),
            Signature::Group(s) => canvas("celery.group", "group", json!({"tasks": all(s)})),
            Signature::Chord { header, body } => canvas(
                "celery.chord",
                "chord",
                json!({"header": canvas("celery.group", "group", json!({"tasks": all(header)})),
                       "body": body.to_json(), "kwargs": {}}),
            ),
            Signature::Map { task, items } => canvas(
                "celery.map",
                "xmap",
                json!({"task": bare(task), "it": items}),
            ),
            Signature::Starmap { task, items } => canvas(
                "celery.starmap",
                "xstarmap",
                json!({"task": bare(task), "it": items}),
            ),
            Signature::Chunks { task, items, size } => canvas(
                "celery.chunks",
                "chunks",
                json!({"task": bare(task), "it": items, "n": size}),
            ),
        }
    }

    /// Reads Celery's dict form (see [`Signature::to_json`]); a task name with a module
    /// prefix (`proj.tasks.add`) names the role after the last dot (`add`). Errors give
    /// the JSON path and what was expected there.
    pub fn from_json(value: &Value) -> Result<Signature, SignatureError> {
        let sig = from_json_at(value, "$")?;
        sig.validate()?;
        Ok(sig)
    }
}

fn from_json_at(value: &Value, path: &str) -> Result<Signature, SignatureError> {
    let err = |path: &str, problem: String| SignatureError {
        path: path.to_string(),
        problem,
    };
    let Value::Object(obj) = value else {
        return Err(err(
            path,
            format!("expected a signature object, found {value}"),
        ));
    };
    let kwargs = match obj.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(k)) => k.clone(),
        Some(other) => {
            return Err(err(
                &format!("{path}.kwargs"),
                format!("expected an object, found {other}"),
            ));
        }
    };
    let field = |key: &str| {
        kwargs
            .get(key)
            .ok_or_else(|| err(&format!("{path}.kwargs"), format!("missing '{key}'")))
    };
    let list = |key: &str| -> Result<Vec<Signature>, SignatureError> {
        let at = format!("{path}.kwargs.{key}");
        match field(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| from_json_at(v, &format!("{at}[{i}]")))
                .collect(),
            other => Err(err(
                &at,
                format!("expected a list of signatures, found {other}"),
            )),
        }
    };
    let task_of = |key: &str| -> Result<String, SignatureError> {
        let at = format!("{path}.kwargs.{key}");
        match field(key)? {
            Value::String(s) => Ok(role_name(s)),
            Value::Object(o) => match o.get("task") {
                Some(Value::String(s)) => Ok(role_name(s)),
                _ => Err(err(&at, "expected a signature with a 'task' name".into())),
            },
            other => Err(err(
                &at,
                format!("expected a task name or signature, found {other}"),
            )),
        }
    };
    let items = || -> Result<Vec<Value>, SignatureError> {
        match field("it")? {
            Value::Array(items) => Ok(items.clone()),
            other => Err(err(
                &format!("{path}.kwargs.it"),
                format!("expected a list, found {other}"),
            )),
        }
    };
    let kind = match obj.get("subtask_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(err(
                &format!("{path}.subtask_type"),
                format!("expected a string or null, found {other}"),
            ));
        }
    };
    match kind {
        None => {
            let name = match obj.get("task") {
                Some(Value::String(s)) => role_name(s),
                _ => return Err(err(path, "expected a 'task' name (a string)".into())),
            };
            let args = match obj.get("args") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(other) => {
                    return Err(err(
                        &format!("{path}.args"),
                        format!("expected a list, found {other}"),
                    ));
                }
            };
            let immutable = match obj.get("immutable") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(err(
                        &format!("{path}.immutable"),
                        format!("expected true or false, found {other}"),
                    ));
                }
            };
            Ok(Signature::Task(TaskCall {
                name,
                args,
                kwargs,
                immutable,
            }))
        }
        Some("chain") => Ok(Signature::Chain(list("tasks")?)),
        Some("group") => Ok(Signature::Group(list("tasks")?)),
        Some("chord") => {
            let at = format!("{path}.kwargs.header");
            let header = match field("header")? {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| from_json_at(v, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
                other => match from_json_at(other, &at)? {
                    Signature::Group(members) => members,
                    single => vec![single],
                },
            };
            let body = from_json_at(field("body")?, &format!("{path}.kwargs.body"))?;
            Ok(Signature::Chord {
                header,
                body: Box::new(body),
            })
        }
        Some("xmap") => Ok(Signature::Map {
            task: task_of("task")?,
            items: items()?,
        }),
        Some("xstarmap") => Ok(Signature::Starmap {
            task: task_of("task")?,
            items: items()?,
        }),
        Some("chunks") => {
            let size = field("n")?
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    err(
                        &format!("{path}.kwargs.n"),
                        "expected a chunk size (a positive integer)".into(),
                    )
                })?;
            Ok(Signature::Chunks {
                task: task_of("task")?,
                items: items()?,
                size,
            })
        }
        Some(other) => Err(err(
            &format!("{path}.subtask_type"),
            format!(
                "unknown '{other}': expected null, chain, group, chord, xmap, xstarmap or chunks"
            ),
        )),
    }
}

/// `proj.tasks.add` -> `add`.
fn role_name(task: &str) -> String {
    task.rsplit('.').next().unwrap_or(task).to_string()
}
