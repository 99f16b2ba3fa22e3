//! `check`: assert comparisons over parameters and earlier outputs (preconditions, final
//! verifications). Each expression is `LEFT OP RIGHT` with OP one of `== != < <= > >=`;
//! both sides compare as numbers when both are numbers, else as text.

use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::cmp::Ordering;

pub struct Check;

const INPUTS: &[InputSpec] = &[
    InputSpec::required(
        "that",
        ValueKind::List,
        "expressions that must all hold, e.g. [\"{{ steps.info.outputs.fields.role }} == master\"]",
    ),
    InputSpec::optional(
        "message",
        ValueKind::String,
        None,
        "said when a check fails, e.g. what to do about it",
    ),
];
const OUTPUTS: &[OutputSpec] = &[OutputSpec {
    name: "passed",
    kind: ValueKind::Int,
    doc: "how many expressions held",
}];

const OPS: [&str; 6] = ["==", "!=", "<=", ">=", "<", ">"];

/// Evaluates one expression; `Err` when it is not an expression at all.
pub fn eval(expr: &str) -> Result<bool, String> {
    // The operator is the first one surrounded by spaces, so values may hold `=` or `<`.
    let (at, op) = OPS
        .iter()
        .filter_map(|op| expr.find(&format!(" {op} ")).map(|i| (i, *op)))
        .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
        .ok_or_else(|| {
            format!("`{expr}` has no comparison (one of == != < <= > >=, with spaces around it)")
        })?;
    let left = expr[..at].trim();
    let right = expr[at + op.len() + 2..].trim();
    let ord = match (left.parse::<f64>(), right.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => left.cmp(right),
    };
    Ok(match op {
        "==" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

#[async_trait]
impl Action for Check {
    fn name(&self) -> &'static str {
        "check"
    }
    fn summary(&self) -> &'static str {
        "Check that comparisons over parameters and outputs hold"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        inputs
            .list("that")
            .unwrap_or_default()
            .into_iter()
            .map(|e| PlannedCall::local(format!("check {e}")))
            .collect()
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let exprs = inputs.list("that")?;
        let mut failed = Vec::new();
        for e in &exprs {
            let shown = crate::escape::escape_capped(e, 200);
            match eval(e) {
                Ok(true) => ctx.output(format!("ok: {shown}")),
                Ok(false) => failed.push(shown),
                Err(why) => {
                    return Err(ActionError::Input {
                        name: "that".into(),
                        problem: why,
                    });
                }
            }
        }
        if failed.is_empty() {
            return Ok(Values::new().with("passed", Value::int(exprs.len() as i64)));
        }
        let hint = inputs
            .opt_str("message")?
            .map(|m| format!("; {m}"))
            .unwrap_or_default();
        Err(ActionError::failed(format!(
            "hold: {}{hint}",
            failed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::eval;

    #[test]
    fn compares_numbers_and_text() {
        assert_eq!(eval("10 > 9"), Ok(true));
        assert_eq!(eval("master == master"), Ok(true));
        assert_eq!(eval("a=b == a=b"), Ok(true));
        assert_eq!(eval("2 <= 1"), Ok(false));
        assert_eq!(eval("up != down"), Ok(true));
        assert!(eval("nothing here").is_err());
    }
}
