//! What the `task/*` components share: a task role receives `{"args": [...], "kwargs": {}}`
//! on `in` and answers the result as JSON on `out`; a bad call is nacked (`invalid-input`)
//! with a reason. Numbers follow Python: integers stay integers (falling back to floats on
//! overflow), a float anywhere makes a float.
//!
//! A call may carry its correlation id in the body as well (`"id"`, as in Celery's task
//! message): the answer is then Celery's result form `{"task_id": ID, "status": "SUCCESS",
//! "result": R}`, so a dispatcher can match it on transports that carry no metadata (MQTT
//! 3.1.1) and on hosts that do not copy it.
//!
//! A task component is one [`TaskFn`] and one line: `wasmflo_guest::export!(Task<Add>);`.

use std::marker::PhantomData;

use serde_json::{Map, Number, Value};
use wasmflo_guest::prelude::*;

/// One task: its component name and the function it computes.
pub trait TaskFn: 'static {
    /// Component name (`task/Add`).
    const COMPONENT: &'static str;
    /// The name workflows call it by (`add`).
    const NAME: &'static str;
    /// One-line description.
    const LABEL: &'static str;
    /// Computes the result of one call.
    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack>;
}

/// The participant serving a [`TaskFn`]; stateless.
#[derive(Debug)]
pub struct Task<F>(PhantomData<F>);

impl<F> Default for Task<F> {
    fn default() -> Self {
        Task(PhantomData)
    }
}

impl<F: TaskFn> Participant for Task<F> {
    fn definition() -> Definition {
        Definition::new(F::COMPONENT)
            .label(F::LABEL)
            .icon("cog")
            .inport(Port::new("in", "object").description("{\"args\": [...], \"kwargs\": {}}"))
            .outport(Port::new("out", "any").description("The result"))
    }

    fn process(&mut self, ctx: &mut Context, _port: &str, msg: Message) -> Result<(), Nack> {
        let (args, kwargs, id) = parse_call(&msg)?;
        let result = F::call(&args, &kwargs)
            .map_err(|n| Nack::new(n.kind(), format!("{}: {}", F::NAME, n.reason())))?;
        match id {
            Some(id) => ctx.send_json("out", &answer(id, result)),
            None => ctx.send_json("out", &result),
        }
    }
}

/// Celery's result form of an answer to call `id`.
pub fn answer(id: String, result: Value) -> Value {
    let mut out = Map::new();
    out.insert("task_id".into(), Value::String(id));
    out.insert("status".into(), Value::String("SUCCESS".into()));
    out.insert("result".into(), result);
    Value::Object(out)
}

/// A call: positional arguments, keyword arguments and the correlation id, if any.
pub type Call = (Vec<Value>, Map<String, Value>, Option<String>);

/// Reads `{"args": [...], "kwargs": {...}, "id": "..."}` (all optional).
pub fn parse_call(msg: &Message) -> Result<Call, Nack> {
    let value: Value = msg.json()?;
    let Value::Object(mut call) = value else {
        return Err(Nack::invalid_input(format!(
            "expected {{\"args\": [...], \"kwargs\": {{}}}}, got {value}"
        )));
    };
    let id = match call.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => {
            return Err(Nack::invalid_input(format!(
                "id must be a string, got {other}"
            )));
        }
    };
    let args = match call.remove("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Nack::invalid_input(format!(
                "args must be a list, got {other}"
            )));
        }
    };
    let kwargs = match call.remove("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(k)) => k,
        Some(other) => {
            return Err(Nack::invalid_input(format!(
                "kwargs must be an object, got {other}"
            )));
        }
    };
    Ok((args, kwargs, id))
}

/// Exactly `N` positional arguments and no keyword arguments.
pub fn positional<'a, const N: usize>(
    args: &'a [Value],
    kwargs: &Map<String, Value>,
) -> Result<&'a [Value; N], Nack> {
    if let Some(key) = kwargs.keys().next() {
        return Err(Nack::invalid_input(format!(
            "unexpected keyword argument '{key}'"
        )));
    }
    args.try_into().map_err(|_| {
        Nack::invalid_input(format!(
            "takes {N} positional arguments but {} were given",
            args.len()
        ))
    })
}

/// A binary operation on integers (checked) and floats.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
}

/// `a op b` as Python computes it for ints and floats; other types are refused.
pub fn arith(op: Op, a: &Value, b: &Value) -> Result<Value, Nack> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        let sym = match op {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
        };
        return Err(Nack::invalid_input(format!(
            "unsupported operand types for {sym}: {a} and {b} (numbers only)"
        )));
    };
    if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
        let exact = match op {
            Op::Add => i.checked_add(j),
            Op::Sub => i.checked_sub(j),
            Op::Mul => i.checked_mul(j),
        };
        if let Some(r) = exact {
            return Ok(Value::from(r));
        }
    }
    let (i, j) = (as_f64(x), as_f64(y));
    let r = match op {
        Op::Add => i + j,
        Op::Sub => i - j,
        Op::Mul => i * j,
    };
    Number::from_f64(r)
        .map(Value::Number)
        .ok_or_else(|| Nack::invalid_input(format!("result {r} is not a finite number")))
}

fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// `sum(items)`, starting from integer 0 as Python does.
pub fn sum<'a>(items: impl IntoIterator<Item = &'a Value>) -> Result<Value, Nack> {
    items
        .into_iter()
        .try_fold(Value::from(0), |acc, v| arith(Op::Add, &acc, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_stay_integers_and_floats_spread() -> Result<(), Nack> {
        assert_eq!(arith(Op::Add, &json!(4), &json!(4))?, json!(8));
        assert_eq!(arith(Op::Sub, &json!(2), &json!(2))?, json!(0));
        assert_eq!(arith(Op::Mul, &json!(1.5), &json!(2))?, json!(3.0));
        assert_eq!(
            arith(Op::Add, &json!(i64::MAX), &json!(1))?,
            json!(9.223372036854776e18)
        );
        assert!(arith(Op::Add, &json!("a"), &json!(1)).is_err());
        assert_eq!(sum(&[json!(1), json!(2), json!(3)])?, json!(6));
        assert_eq!(sum(&[])?, json!(0));
        Ok(())
    }

    #[test]
    fn calls_parse_with_defaults() -> Result<(), Nack> {
        let msg = Message::from_json(&json!({"args": [1, 2]}))?;
        let (args, kwargs, id) = parse_call(&msg)?;
        assert_eq!(args, vec![json!(1), json!(2)]);
        assert!(kwargs.is_empty());
        assert_eq!(id, None);
        assert!(positional::<3>(&args, &kwargs).is_err());
        assert!(parse_call(&Message::from_json(&json!([1]))?).is_err());
        let with_id = Message::from_json(&json!({"args": [], "id": "wf-1.0"}))?;
        assert_eq!(parse_call(&with_id)?.2.as_deref(), Some("wf-1.0"));
        assert!(parse_call(&Message::from_json(&json!({"id": 7}))?).is_err());
        assert_eq!(
            answer("wf-1.0".into(), json!(0)),
            json!({"task_id": "wf-1.0", "status": "SUCCESS", "result": 0})
        );
        Ok(())
    }
}
