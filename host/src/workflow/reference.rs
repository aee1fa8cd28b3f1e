//! The reference evaluator: Celery's semantics over plain Rust functions, sequentially.
//! It defines what a workflow's result is; the dispatcher must agree with it.

use serde_json::{Map, Value};

use super::WorkflowError;
use super::signature::{Signature, TaskCall};

/// A task as a plain function: positional and keyword arguments to a result or a reason.
pub type TaskFn = dyn Fn(&[Value], &Map<String, Value>) -> Result<Value, String>;

/// Evaluates `sig`, calling `task(name)` for each task; an unknown name fails that task.
pub fn evaluate(
    sig: &Signature,
    task: &dyn Fn(&str) -> Option<&'static TaskFn>,
) -> Result<Value, WorkflowError> {
    let call = |c: &TaskCall| -> Result<Value, WorkflowError> {
        let f = task(&c.name).ok_or_else(|| WorkflowError::UnknownTask {
            name: c.name.clone(),
        })?;
        f(&c.args, &c.kwargs).map_err(|reason| WorkflowError::TaskFailed {
            task: c.to_string(),
            reason,
        })
    };
    match sig {
        Signature::Task(c) => call(c),
        Signature::Chain(steps) => {
            let mut result: Option<Value> = None;
            for step in steps {
                let step = match result.take() {
                    Some(r) => step.clone().prepend(r),
                    None => step.clone(),
                };
                result = Some(evaluate(&step, task)?);
            }
            Ok(result.unwrap_or(Value::Null))
        }
        Signature::Group(members) => members
            .iter()
            .map(|m| evaluate(m, task))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Signature::Chord { header, body } => {
            let results = header
                .iter()
                .map(|m| evaluate(m, task))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| WorkflowError::Chord(Box::new(e)))?;
            evaluate(&body.as_ref().clone().prepend(Value::Array(results)), task)
        }
        Signature::Map { task: name, items } => items
            .iter()
            .map(|item| call(&plain(name, vec![item.clone()])))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Signature::Starmap { task: name, items } => items
            .iter()
            .map(|item| call(&plain(name, spread(item))))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Signature::Chunks {
            task: name,
            items,
            size,
        } => items
            .chunks((*size).max(1))
            .map(|chunk| {
                evaluate(
                    &Signature::Starmap {
                        task: name.clone(),
                        items: chunk.to_vec(),
                    },
                    task,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

/// A partial call with no keyword arguments.
pub(crate) fn plain(name: &str, args: Vec<Value>) -> TaskCall {
    TaskCall {
        name: name.to_string(),
        args,
        kwargs: Map::new(),
        immutable: false,
    }
}

/// A starmap item as positional arguments (validation made sure it is a list).
pub(crate) fn spread(item: &Value) -> Vec<Value> {
    match item {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// The shipped tasks (`add`, `sub`, `mul`, `xsum`, `tsum`) as plain functions, written
/// independently of the components so that comparing the two means something.
pub fn builtin(name: &str) -> Option<&'static TaskFn> {
    fn two(args: &[Value], kw: &Map<String, Value>) -> Result<(f64, f64, bool), String> {
        match (args, kw.is_empty()) {
            ([Value::Number(a), Value::Number(b)], true) => {
                let ints = a.is_i64() && b.is_i64();
                Ok((
                    a.as_f64().unwrap_or(f64::NAN),
                    b.as_f64().unwrap_or(f64::NAN),
                    ints,
                ))
            }
            _ => Err(format!("expected two numbers, got {args:?}")),
        }
    }
    fn num(x: f64, ints: bool, exact: Option<i64>) -> Result<Value, String> {
        match (ints, exact) {
            (true, Some(i)) => Ok(Value::from(i)),
            _ => serde_json::Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| format!("{x} is not finite")),
        }
    }
    fn ints(args: &[Value]) -> (i64, i64) {
        let get = |i: usize| args.get(i).and_then(Value::as_i64).unwrap_or(0);
        (get(0), get(1))
    }
    fn add(args: &[Value], kw: &Map<String, Value>) -> Result<Value, String> {
        let (a, b, i) = two(args, kw)?;
        let (x, y) = ints(args);
        num(a + b, i, x.checked_add(y))
    }
    fn sub(args: &[Value], kw: &Map<String, Value>) -> Result<Value, String> {
        let (a, b, i) = two(args, kw)?;
        let (x, y) = ints(args);
        num(a - b, i, x.checked_sub(y))
    }
    fn mul(args: &[Value], kw: &Map<String, Value>) -> Result<Value, String> {
        let (a, b, i) = two(args, kw)?;
        let (x, y) = ints(args);
        num(a * b, i, x.checked_mul(y))
    }
    fn tsum(args: &[Value], kw: &Map<String, Value>) -> Result<Value, String> {
        match (args, kw.is_empty()) {
            ([Value::Array(items)], true) => items
                .iter()
                .try_fold(Value::from(0), |acc, v| add(&[acc, v.clone()], &Map::new())),
            _ => Err(format!("expected one list of numbers, got {args:?}")),
        }
    }
    fn xsum(args: &[Value], kw: &Map<String, Value>) -> Result<Value, String> {
        match (args, kw.is_empty()) {
            ([Value::Array(items)], true) => items.iter().try_fold(Value::from(0), |acc, v| {
                let term = match v {
                    Value::Array(_) => tsum(std::slice::from_ref(v), &Map::new())?,
                    other => other.clone(),
                };
                add(&[acc, term], &Map::new())
            }),
            _ => Err(format!("expected one list, got {args:?}")),
        }
    }
    match name {
        "add" => Some(&add),
        "sub" => Some(&sub),
        "mul" => Some(&mul),
        "tsum" => Some(&tsum),
        "xsum" => Some(&xsum),
        _ => None,
    }
}
