//! Checking `{{ ... }}` references in step inputs: known parameters, earlier steps only
//! (forward references and cycles are errors), and outputs the step's action declares.

use super::{Checker, Phase, RunbookError};
use crate::runbook::action::OutputSpec;
use crate::runbook::template::{Ref, find_refs};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

#[allow(clippy::too_many_arguments)]
pub(super) fn check_refs(
    c: &Checker<'_>,
    v: &serde_json::Value,
    span: Range<usize>,
    id: &str,
    phase: Phase,
    params: &BTreeSet<&str>,
    earlier: &BTreeMap<String, &'static [OutputSpec]>,
    has_refs: &mut bool,
) -> Result<(), RunbookError> {
    // Point inside the string when the reference can be found there (skipping the quote).
    let at = |offset: usize| {
        let start = span.start + 1 + offset;
        if start < span.end { start } else { span.start }
    };
    match v {
        serde_json::Value::String(s) => {
            let found = find_refs(s).map_err(|(o, m)| {
                c.err(
                    at(o),
                    format!("step `{id}`: {m}"),
                    "write references as {{ params.NAME }} or {{ steps.ID.outputs.NAME }}",
                )
            })?;
            for f in found {
                *has_refs = true;
                match &f.reference {
                    Ref::Param(p) if !params.contains(p.as_str()) => {
                        return Err(c.err(
                            at(f.start),
                            format!("step `{id}` refers to unknown parameter `{p}`"),
                            format!(
                                "declare it under [params.{p}] or use one of: {}",
                                params.iter().copied().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    Ref::Output { step, output, .. } => {
                        let Some(outputs) = earlier.get(step) else {
                            let why = if step == id {
                                "itself (a cycle)".to_string()
                            } else {
                                format!(
                                    "`{step}`, which is not an earlier step (steps run in file order; a forward reference or a cycle)"
                                )
                            };
                            let hint = if phase == Phase::Rollback {
                                "refer to a precondition or main step"
                            } else {
                                "refer only to steps above this one"
                            };
                            return Err(c.err(
                                at(f.start),
                                format!("step `{id}` refers to {why}"),
                                hint,
                            ));
                        };
                        if !outputs.iter().any(|o| o.name == output) {
                            return Err(c.err(at(f.start), format!("step `{id}` refers to output `{output}` that step `{step}` does not produce"), format!("its outputs are: {}", outputs.iter().map(|o| o.name).collect::<Vec<_>>().join(", "))));
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_refs(c, i, span.clone(), id, phase, params, earlier, has_refs)),
        serde_json::Value::Object(map) => map
            .values()
            .try_for_each(|i| check_refs(c, i, span.clone(), id, phase, params, earlier, has_refs)),
        _ => Ok(()),
    }
}
