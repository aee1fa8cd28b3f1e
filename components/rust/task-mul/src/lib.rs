//! `task/Mul`: the workflow task `mul` (x * y).

use serde_json::{Map, Value};
use task_common::{Op, TaskFn, arith, positional};
use wasmflo_guest::prelude::*;

/// `mul(x, y)`.
#[derive(Debug)]
pub struct Mul;

impl TaskFn for Mul {
    const COMPONENT: &'static str = "task/Mul";
    const NAME: &'static str = "mul";
    const LABEL: &'static str = "x * y";

    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack> {
        let [x, y] = positional::<2>(args, kwargs)?;
        arith(Op::Mul, x, y)
    }
}

wasmflo_guest::export!(task_common::Task<Mul>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn computes_and_refuses_bad_calls() -> Result<(), Nack> {
        assert!(Mul::call(&[json!(10), json!(2)], &Map::new())?.is_number());
        assert!(Mul::call(&[json!(1)], &Map::new()).is_err());
        assert!(Mul::call(&[json!(1), json!("x")], &Map::new()).is_err());
        Ok(())
    }
}
