//! `task/Sub`: the workflow task `sub` (x - y).

use serde_json::{Map, Value};
use task_common::{Op, TaskFn, arith, positional};
use wasmflo_guest::prelude::*;

/// `sub(x, y)`.
#[derive(Debug)]
pub struct Sub;

impl TaskFn for Sub {
    const COMPONENT: &'static str = "task/Sub";
    const NAME: &'static str = "sub";
    const LABEL: &'static str = "x - y";

    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack> {
        let [x, y] = positional::<2>(args, kwargs)?;
        arith(Op::Sub, x, y)
    }
}

wasmflo_guest::export!(task_common::Task<Sub>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn computes_and_refuses_bad_calls() -> Result<(), Nack> {
        assert!(Sub::call(&[json!(10), json!(2)], &Map::new())?.is_number());
        assert!(Sub::call(&[json!(1)], &Map::new()).is_err());
        assert!(Sub::call(&[json!(1), json!("x")], &Map::new()).is_err());
        Ok(())
    }
}
