//! `task/Tsum`: the workflow task `tsum(numbers)`, the sum of a list of numbers (Celery's
//! integration-test `tsum`, the usual chord body).

use serde_json::{Map, Value};
use task_common::{TaskFn, positional, sum};
use wasmflo_guest::prelude::*;

/// `tsum(numbers)`.
#[derive(Debug)]
pub struct Tsum;

impl TaskFn for Tsum {
    const COMPONENT: &'static str = "task/Tsum";
    const NAME: &'static str = "tsum";
    const LABEL: &'static str = "sum of a list of numbers";

    fn call(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, Nack> {
        let [items] = positional::<1>(args, kwargs)?;
        let Value::Array(items) = items else {
            return Err(Nack::invalid_input(format!(
                "expected a list of numbers, got {items}"
            )));
        };
        sum(items)
    }
}

wasmflo_guest::export!(task_common::Task<Tsum>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_a_list() -> Result<(), Nack> {
        assert_eq!(Tsum::call(&[json!([1, 2, 3.5])], &Map::new())?, json!(6.5));
        assert_eq!(Tsum::call(&[json!([])], &Map::new())?, json!(0));
        assert!(Tsum::call(&[json!([[1]])], &Map::new()).is_err());
        assert!(Tsum::call(&[json!(1)], &Map::new()).is_err());
        Ok(())
    }
}
