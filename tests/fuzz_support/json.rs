//! Structure-aware mutations of a JSON document (configs, shard indexes, safetensors headers,
//! artifact sidecars): a field removed, a value replaced by one of another type or an absurd
//! size, an extra field added. Byte-level mutations rarely keep JSON valid; these reach the
//! validation behind the parser.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// Values that stress a field whatever it means: nulls, wrong types, empty containers, zero,
/// negatives, sizes that overflow any product, fractions where integers belong.
pub fn awkward_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(1),
        json!(-1),
        json!(0.5),
        json!(-1e308),
        json!(1e308),
        json!(1u64 << 31),
        json!(1u64 << 32),
        json!(1u64 << 53),
        json!(1u64 << 62),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!("NaN"),
        json!([]),
        json!({}),
        json!([0]),
        json!([1u64 << 62, 1u64 << 62]),
        json!([u64::MAX, 0]),
        json!([65536, 65536, 65536, 65536]),
    ]
}

#[derive(Clone, Debug)]
pub enum Edit {
    /// Remove the node (from its object or array).
    Remove(Index),
    /// Replace the node's value.
    Replace(Index, usize),
    /// Add a field to an object node (or an element to an array node).
    Add(Index, usize),
    /// Replace the node with a copy of another node (duplicated keys, swapped shapes).
    CopyFrom(Index, Index),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let n = awkward_values().len();
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::Remove),
        3 => (any::<Index>(), 0..n).prop_map(|(i, v)| Edit::Replace(i, v)),
        1 => (any::<Index>(), 0..n).prop_map(|(i, v)| Edit::Add(i, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::CopyFrom(a, b)),
    ]
}

/// One to three edits of `seed`, serialized.
pub fn edited(seed: Value) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 1..=3).prop_map(move |edits| {
        let mut v = seed.clone();
        for e in &edits {
            apply(&mut v, e);
        }
        serde_json::to_vec(&v).expect("a Value serializes")
    })
}

/// A JSON path: object keys and array indices from the root.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    At(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Step::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Step::At(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::At(i) => &mut v[*i],
    })
}

pub fn apply(v: &mut Value, e: &Edit) {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match e {
        Edit::Remove(i) => {
            let path = pick(i);
            if let Some((last, parent)) = path.split_last() {
                match (get_mut(v, parent), last) {
                    (Value::Object(m), Step::Key(k)) => {
                        m.remove(k);
                    }
                    (Value::Array(a), Step::At(j)) => {
                        a.remove(*j);
                    }
                    _ => {}
                }
            }
        }
        Edit::Replace(i, new) => *get_mut(v, &pick(i)) = awkward_values()[*new].clone(),
        Edit::Add(i, new) => match get_mut(v, &pick(i)) {
            Value::Object(m) => {
                m.insert("fuzz_extra".into(), awkward_values()[*new].clone());
            }
            Value::Array(a) => a.push(awkward_values()[*new].clone()),
            _ => {}
        },
        Edit::CopyFrom(to, from) => {
            let value = get_mut(v, &pick(from)).clone();
            *get_mut(v, &pick(to)) = value;
        }
    }
}
