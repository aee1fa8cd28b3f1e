//! `task/Add`: the workflow task `add` (x + y).

use serde_json::{Map, Value};
use task_common::{Op, TaskFn, arith, positional};
use wasmflo_guest::prelude::*;

/// `add(x, y)`.
#[derive(Debug)]
pub struct Add;

impl TaskFn for Add {
    const COMPONENT: &'static str = "task/Add";
    const NAME: &'static str = "add";
    const LABEL: &'static str = "x + y";

    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack> {
        let [x, y] = positional::<2>(args, kwargs)?;
        arith(Op::Add, x, y)
    }
}

wasmflo_guest::export!(task_common::Task<Add>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn computes_and_refuses_bad_calls() -> Result<(), Nack> {
        assert!(Add::call(&[json!(10), json!(2)], &Map::new())?.is_number());
        assert!(Add::call(&[json!(1)], &Map::new()).is_err());
        assert!(Add::call(&[json!(1), json!("x")], &Map::new()).is_err());
        Ok(())
    }
}
