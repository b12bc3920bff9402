//! Shards: `K/N` takes every N-th image of the dataset (sorted by id), starting at the K-th, so
//! that N jobs of an array — a Slurm job array, a Kubernetes indexed job — split a dataset
//! between them with nothing shared but the dataset folder. Round robin over the sorted ids keeps
//! the shards within one image of each other in size (a hash of the id would not, for small
//! datasets) and is the same on every machine; all shards must read the same listing.

use std::fmt;
use std::str::FromStr;

use iterinv_models::{Error, Result};
use serde::{Deserialize, Serialize};

/// Shard `index` of `count`, both from 1 (`1/4` … `4/4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// More shards than this is surely a mistake (and the limit keeps arithmetic far from overflow).
pub const MAX_SHARDS: usize = 1_000_000;

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || count > MAX_SHARDS || index == 0 || index > count {
            return Err(Error::Input {
                what: format!("shard {index}/{count}"),
                detail: format!(
                    "must be K/N with 1 ≤ K ≤ N ≤ {MAX_SHARDS} (e.g. 1/4 … 4/4 for four jobs)"
                ),
            });
        }
        Ok(Shard { index, count })
    }

    /// The shard of a Slurm job array task, from `SLURM_ARRAY_TASK_ID` and
    /// `SLURM_ARRAY_TASK_COUNT` (with `SLURM_ARRAY_TASK_MIN` and `_STEP`, so that `--array=0-3`,
    /// `1-4` and `0-30:10` all number their tasks 1..N); None outside an array. `var` reads the
    /// environment (a parameter, so that tests need not change the process's).
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let num = |name: &str, value: Option<String>, default: usize| -> Result<usize> {
            match value {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| Error::Input {
                    what: format!("{name}={v}"),
                    detail: "is not a whole number".into(),
                }),
            }
        };
        let id = num("SLURM_ARRAY_TASK_ID", Some(id), 0)?;
        let count = num("SLURM_ARRAY_TASK_COUNT", Some(count), 0)?;
        let min = num("SLURM_ARRAY_TASK_MIN", var("SLURM_ARRAY_TASK_MIN"), 0)?;
        let step = num("SLURM_ARRAY_TASK_STEP", var("SLURM_ARRAY_TASK_STEP"), 1)?.max(1);
        let offset = id.checked_sub(min).filter(|o| o % step == 0);
        match offset {
            Some(o) => Shard::new(o / step + 1, count)
                .map(Some)
                .map_err(|_| Error::Input {
                    what: format!("Slurm array task {id} of {count} (min {min}, step {step})"),
                    detail: "does not name one of the array's tasks; give --shard K/N".into(),
                }),
            None => Err(Error::Input {
                what: format!("Slurm array task {id} (min {min}, step {step})"),
                detail: "is not on the array's steps; give --shard K/N".into(),
            }),
        }
    }

    /// Whether the image at `position` of the sorted dataset belongs to this shard.
    pub fn holds(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// This shard's part of `items` (the dataset's sorted items), in order.
    pub fn select<'a, T>(&self, items: &'a [T]) -> Vec<&'a T> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.holds(*i))
            .map(|(_, it)| it)
            .collect()
    }
}

impl FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::Input {
            what: format!("shard `{s}`"),
            detail: "must be K/N, e.g. 2/4 for the second of four jobs".into(),
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every image is in exactly one shard, the shards differ in size by at most one, and the
    /// same call gives the same shard.
    #[test]
    fn shards_are_disjoint_covering_balanced_and_deterministic() {
        for len in [0usize, 1, 2, 3, 7, 10, 69] {
            let items: Vec<usize> = (0..len).collect();
            for count in 1..=5 {
                let mut seen = vec![0; len];
                let mut sizes = Vec::new();
                for index in 1..=count {
                    let shard = Shard::new(index, count).unwrap();
                    let part = shard.select(&items);
                    assert_eq!(part, shard.select(&items));
                    for &&i in &part {
                        seen[i] += 1;
                    }
                    sizes.push(part.len());
                }
                assert!(seen.iter().all(|&s| s == 1), "{len} in {count}: {seen:?}");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{len} in {count}: {sizes:?}");
            }
        }
        // Which images: round robin over the sorted order.
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!(shard.select(&["a", "b", "c", "d", "e"]), [&"b", &"e"]);
    }

    #[test]
    fn shard_text_is_checked() {
        assert_eq!("1/1".parse::<Shard>().unwrap(), Shard::new(1, 1).unwrap());
        assert_eq!(" 3 / 4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in [
            "0/2",
            "3/2",
            "1/0",
            "2",
            "a/b",
            "-1/2",
            "1/2/3",
            "1/2000000",
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("K/N"), "{bad}: {e}");
        }
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn slurm_arrays_number_their_tasks_from_one() {
        let get = |pairs: &[(&str, &str)]| Shard::from_slurm(env(pairs));
        assert_eq!(get(&[]).unwrap(), None);
        assert_eq!(get(&[("SLURM_ARRAY_TASK_ID", "3")]).unwrap(), None);
        let s = |id: &str, count: &str, min: &str, step: &str| {
            get(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_COUNT", count),
                ("SLURM_ARRAY_TASK_MIN", min),
                ("SLURM_ARRAY_TASK_STEP", step),
            ])
        };
        // --array=0-3, 1-4 and 0-30:10: four tasks each.
        assert_eq!(
            s("0", "4", "0", "1").unwrap(),
            Some(Shard::new(1, 4).unwrap())
        );
        assert_eq!(
            s("4", "4", "1", "1").unwrap(),
            Some(Shard::new(4, 4).unwrap())
        );
        assert_eq!(
            s("20", "4", "0", "10").unwrap(),
            Some(Shard::new(3, 4).unwrap())
        );
        // Without MIN and STEP (older Slurm): IDs from 0.
        let plain = get(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert_eq!(plain.unwrap(), Some(Shard::new(2, 2).unwrap()));
        for (id, count, min, step) in [
            ("5", "4", "0", "1"),
            ("15", "4", "0", "10"),
            ("x", "4", "0", "1"),
            ("0", "4", "1", "1"),
        ] {
            let e = s(id, count, min, step).unwrap_err().to_string();
            assert!(e.contains("--shard") || e.contains("whole number"), "{e}");
        }
    }
}
