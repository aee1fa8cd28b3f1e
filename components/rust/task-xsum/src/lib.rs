//! `task/Xsum`: the workflow task `xsum(items)`: the sum of a list whose items are numbers
//! or lists of numbers (each list counts as its sum), as Celery's integration-test `xsum`.

use serde_json::{Map, Value};
use task_common::{Op, TaskFn, arith, positional, sum};
use wasmflo_guest::prelude::*;

/// `xsum(items)`.
#[derive(Debug)]
pub struct Xsum;

impl TaskFn for Xsum {
    const COMPONENT: &'static str = "task/Xsum";
    const NAME: &'static str = "xsum";
    const LABEL: &'static str = "sum of numbers and of lists of numbers";

    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack> {
        let [items] = positional::<1>(args, kwargs)?;
        let Value::Array(items) = items else {
            return Err(Nack::invalid_input(format!("expected a list, got {items}")));
        };
        items.iter().try_fold(Value::from(0), |acc, item| {
            let term = match item {
                Value::Array(inner) => sum(inner)?,
                other => other.clone(),
            };
            arith(Op::Add, &acc, &term)
        })
    }
}

wasmflo_guest::export!(task_common::Task<Xsum>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_numbers_and_lists() -> Result<(), Nack> {
        assert_eq!(
            Xsum::call(&[json!([1, [2, 3], 4])], &Map::new())?,
            json!(10)
        );
        assert_eq!(
            Xsum::call(&[json!([[0, 1, 2], [10]])], &Map::new())?,
            json!(13)
        );
        assert!(Xsum::call(&[json!(["a"])], &Map::new()).is_err());
        Ok(())
    }
}
