//! Checks of a tokenizer.json's `TemplateProcessing` post-processors before the tokenizers crate
//! uses them: a template piece naming a special token its `special_tokens` table lacks makes it
//! panic mid-encode ("no entry found for key"; seen with fuzzed files).

use serde_json::Value;

/// Check every `TemplateProcessing` in `post_processor` (alone or nested in a Sequence).
pub(crate) fn check_json_templates(post_processor: &Value) -> Result<(), String> {
    match post_processor {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
                check_template(o)?;
            }
            o.values().try_for_each(check_json_templates)
        }
        Value::Array(a) => a.iter().try_for_each(check_json_templates),
        _ => Ok(()),
    }
}

fn check_template(template: &serde_json::Map<String, Value>) -> Result<(), String> {
    let known = template.get("special_tokens").and_then(Value::as_object);
    for which in ["single", "pair"] {
        let Some(pieces) = template.get(which).and_then(Value::as_array) else {
            continue;
        };
        for piece in pieces {
            let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str) else {
                continue;
            };
            if !known.is_some_and(|k| k.contains_key(id)) {
                return Err(format!(
                    "its post-processor's {which} template adds the special token {id:?}, which \
                     its special_tokens table lacks"
                ));
            }
        }
    }
    Ok(())
}
