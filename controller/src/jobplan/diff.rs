//! The structured diff of two versions of a job, in Nomad's shape (`JobDiff` → `TaskGroupDiff`
//! → `TaskDiff`, each with `Fields` and `Objects`, typed `Added`/`Deleted`/`Edited`/`None`).
//! Pure: both sides go through `jobspec::to_api_job`, so every name in the diff is the field
//! name of Nomad's API (`Count`, `Env[PORT]`, `Config`/`image`, `RestartPolicy`/`Attempts`)
//! and the diff cannot drift from what `drover job inspect` prints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::jobspec::to_api_job;
use crate::structs::Job;

/// Nomad's `DiffType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiffType {
    None,
    Added,
    Deleted,
    Edited,
}

impl DiffType {
    /// The marker Nomad's CLI prints before a line of this type, without colour.
    pub fn marker(self) -> &'static str {
        match self {
            DiffType::Added => "+ ",
            DiffType::Deleted => "- ",
            DiffType::Edited => "+/- ",
            DiffType::None => "",
        }
    }

    fn of(old: bool, new: bool) -> DiffType {
        match (old, new) {
            (false, true) => DiffType::Added,
            (true, false) => DiffType::Deleted,
            _ => DiffType::None,
        }
    }
}

/// Go marshals an empty slice it never filled as `null`; accept both.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FieldDiff {
    pub r#type: DiffType,
    pub name: String,
    #[serde(default)]
    pub old: String,
    #[serde(default)]
    pub new: String,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectDiff {
    pub r#type: DiffType,
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDiff {
    pub r#type: DiffType,
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupDiff {
    pub r#type: DiffType,
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub tasks: Vec<TaskDiff>,
    /// Update type (`create`, `destroy`, `in-place update`, …) → allocations; filled in from
    /// the scheduler's plan by [`super::annotate`].
    #[serde(default, deserialize_with = "nullable")]
    pub updates: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDiff {
    pub r#type: DiffType,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    #[serde(default, deserialize_with = "nullable")]
    pub task_groups: Vec<TaskGroupDiff>,
}

impl JobDiff {
    pub fn group(&self, name: &str) -> Option<&TaskGroupDiff> {
        self.task_groups.iter().find(|g| g.name == name)
    }
}

/// Job fields that are bookkeeping, not spec (Nomad filters the same ones), plus those the
/// diff walks on its own (`TaskGroups`) or that Nomad copies into every group (`Update`).
const JOB_SKIP: &[&str] = &[
    "ID",
    "Status",
    "StatusDescription",
    "Version",
    "Stable",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "Update",
    "SubmitTime",
    "NomadTokenID",
    "VaultToken",
    "TaskGroups",
];
const GROUP_SKIP: &[&str] = &["Name", "Tasks"];
const TASK_SKIP: &[&str] = &["Name"];

/// Lists of strings Nomad diffs as sets (an object of the same name, one field per value).
const STRING_SETS: &[&str] = &["Datacenters"];

/// Maps whose entries are fields of their own (`Meta[owner]`), as Nomad's flatmap writes them.
const MAPS: &[&str] = &[
    "Meta",
    "Env",
    "GetterOptions",
    "GetterHeaders",
    "Header",
    "CanaryMeta",
];

/// One level of a job, flattened the way Nomad's diff sees it: primitive fields by name, and
/// nested objects (blocks) matched between the two sides by kind and identity.
#[derive(Debug, Clone, Default, PartialEq)]
struct Shape {
    fields: BTreeMap<String, String>,
    sets: BTreeMap<String, BTreeSet<String>>,
    objects: Vec<Sub>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sub {
    /// Nomad's object name: `Constraint`, `Service`, `RestartPolicy`, `Config`, …
    name: String,
    /// What matches an object with its counterpart: the object name for a single block, the
    /// service name or port label where Nomad keys by them, else the whole content (a set).
    key: String,
    shape: Shape,
}

/// Nomad's name for one element of a list of blocks.
fn singular(list: &str) -> String {
    match list {
        "Constraints" => "Constraint".into(),
        "Affinities" => "Affinity".into(),
        "ReservedPorts" => "Static Port".into(),
        "DynamicPorts" => "Dynamic Port".into(),
        "Checks" => "Check".into(),
        "SpreadTarget" => "SpreadTarget".into(),
        other => other.strip_suffix('s').unwrap_or(other).to_string(),
    }
}

fn primitive(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A level's shape from its API JSON; `skip` names the fields handled elsewhere.
fn shape_of(obj: &Map<String, Value>, skip: &[&str]) -> Shape {
    let mut shape = Shape::default();
    for (k, v) in obj {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::Null => {}
            Value::Object(m) if k == "Config" => shape.objects.push(Sub {
                name: k.clone(),
                key: k.clone(),
                shape: Shape {
                    fields: flatten_all(m),
                    ..Shape::default()
                },
            }),
            Value::Object(m) if MAPS.contains(&k.as_str()) => {
                for (mk, mv) in m {
                    let value = primitive(mv).unwrap_or_else(|| mv.to_string());
                    shape.fields.insert(format!("{k}[{mk}]"), value);
                }
            }
            Value::Object(m) => shape.objects.push(Sub {
                name: k.clone(),
                key: k.clone(),
                shape: shape_of(m, &[]),
            }),
            Value::Array(items) if items.iter().all(|i| primitive(i).is_some()) => {
                let values = items.iter().filter_map(primitive);
                if STRING_SETS.contains(&k.as_str()) {
                    shape.sets.insert(k.clone(), values.collect());
                } else {
                    for (i, value) in values.enumerate() {
                        shape.fields.insert(format!("{k}[{i}]"), value);
                    }
                }
            }
            Value::Array(items) => {
                let name = singular(k);
                for item in items {
                    let Value::Object(m) = item else { continue };
                    let key = match name.as_str() {
                        "Service" | "Check" => m.get("Name").and_then(primitive),
                        "Static Port" | "Dynamic Port" => m.get("Label").and_then(primitive),
                        _ => None,
                    }
                    .unwrap_or_else(|| item.to_string());
                    shape.objects.push(Sub {
                        name: name.clone(),
                        key,
                        shape: shape_of(m, &[]),
                    });
                }
            }
            other => {
                if let Some(p) = primitive(other) {
                    shape.fields.insert(k.clone(), p);
                }
            }
        }
    }
    shape
}

/// A driver's `config` block, flattened whole: `args[0]`, `labels[team]`.
fn flatten_all(m: &Map<String, Value>) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}[{k}]"), v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            other => {
                if let Some(p) = primitive(other) {
                    out.insert(prefix.to_string(), p);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        walk(k, v, &mut out);
    }
    out
}

/// Field diffs of two flattened levels, sorted by name. `contextual` keeps unchanged fields
/// (type `None`), which Nomad shows inside an edited object so the change has its context.
fn field_diffs(
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    contextual: bool,
) -> Vec<FieldDiff> {
    let empty = BTreeMap::new();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let names: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (ov, nv) = (o.get(name), n.get(name));
        let r#type = match (ov, nv) {
            (Some(a), Some(b)) if a == b => DiffType::None,
            (Some(_), Some(_)) => DiffType::Edited,
            (a, b) => DiffType::of(a.is_some(), b.is_some()),
        };
        if r#type == DiffType::None && !contextual {
            continue;
        }
        out.push(FieldDiff {
            r#type,
            name: name.clone(),
            old: ov.cloned().unwrap_or_default(),
            new: nv.cloned().unwrap_or_default(),
            annotations: vec![],
        });
    }
    out
}

fn set_diff(
    name: &str,
    old: Option<&BTreeSet<String>>,
    new: Option<&BTreeSet<String>>,
) -> Option<ObjectDiff> {
    if old == new {
        return None;
    }
    let empty = BTreeSet::new();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let r#type = match (old.is_some(), new.is_some()) {
        (true, true) => DiffType::Edited,
        (a, b) => DiffType::of(a, b),
    };
    let fields = o
        .union(n)
        .map(|v| FieldDiff {
            r#type: DiffType::of(o.contains(v), n.contains(v)),
            name: name.to_string(),
            old: if o.contains(v) {
                v.clone()
            } else {
                String::new()
            },
            new: if n.contains(v) {
                v.clone()
            } else {
                String::new()
            },
            annotations: vec![],
        })
        .collect();
    Some(ObjectDiff {
        r#type,
        name: name.to_string(),
        fields,
        objects: vec![],
    })
}

/// The object diffs of two levels: sets of strings first, then blocks matched by
/// (name, key), in name order; unchanged blocks are left out.
fn object_diffs(old: Option<&Shape>, new: Option<&Shape>) -> Vec<ObjectDiff> {
    let empty = Shape::default();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut out = Vec::new();
    let set_names: BTreeSet<&String> = o.sets.keys().chain(n.sets.keys()).collect();
    for name in set_names {
        out.extend(set_diff(name, o.sets.get(name), n.sets.get(name)));
    }
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for s in o.objects.iter().chain(&n.objects) {
        let k = (s.name.as_str(), s.key.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    // Stable: blocks of one kind keep their file order.
    keys.sort_by_key(|k| k.0);
    fn block<'s>(side: &'s Shape, k: (&str, &str)) -> Option<&'s Shape> {
        side.objects
            .iter()
            .find(|s| s.name == k.0 && s.key == k.1)
            .map(|s| &s.shape)
    }
    for k in keys {
        out.extend(object_diff(k.0, block(o, k), block(n, k)));
    }
    out
}

fn object_diff(name: &str, old: Option<&Shape>, new: Option<&Shape>) -> Option<ObjectDiff> {
    if old == new {
        return None;
    }
    let r#type = match (old.is_some(), new.is_some()) {
        (true, true) => DiffType::Edited,
        (a, b) => DiffType::of(a, b),
    };
    Some(ObjectDiff {
        r#type,
        name: name.to_string(),
        fields: field_diffs(old.map(|s| &s.fields), new.map(|s| &s.fields), true),
        objects: object_diffs(old, new),
    })
}

fn kind(old: bool, new: bool, changed: bool) -> DiffType {
    match (old, new) {
        (true, true) if changed => DiffType::Edited,
        (true, true) => DiffType::None,
        (a, b) => DiffType::of(a, b),
    }
}

fn named(list: Option<&Value>) -> Vec<(&str, &Map<String, Value>)> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let m = v.as_object()?;
            Some((m.get("Name")?.as_str()?, m))
        })
        .collect()
}

/// Names of both sides, old order first, then what only the new side has.
fn union_names<'a>(
    old: &[(&'a str, &'a Map<String, Value>)],
    new: &[(&'a str, &'a Map<String, Value>)],
) -> Vec<&'a str> {
    let mut names: Vec<&str> = old.iter().map(|(n, _)| *n).collect();
    for (n, _) in new {
        if !names.contains(n) {
            names.push(n);
        }
    }
    names.sort_unstable();
    names
}

fn find<'a>(
    list: &[(&'a str, &'a Map<String, Value>)],
    name: &str,
) -> Option<&'a Map<String, Value>> {
    list.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

fn task_diff(
    name: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> TaskDiff {
    let (os, ns) = (
        old.map(|m| shape_of(m, TASK_SKIP)),
        new.map(|m| shape_of(m, TASK_SKIP)),
    );
    let fields = field_diffs(
        os.as_ref().map(|s| &s.fields),
        ns.as_ref().map(|s| &s.fields),
        false,
    );
    let objects = object_diffs(os.as_ref(), ns.as_ref());
    let changed = !fields.is_empty() || !objects.is_empty();
    TaskDiff {
        r#type: kind(old.is_some(), new.is_some(), changed),
        name: name.to_string(),
        fields,
        objects,
        annotations: vec![],
    }
}

/// One level of the job tree (the job, or a group): its own fields and objects, then its named
/// children under `children` (`TaskGroups`, `Tasks`), each diffed by `child`. The last value
/// says whether anything at or below this level changed.
fn level_diff<C>(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    skip: &[&str],
    children: &str,
    child: impl Fn(&str, Option<&Map<String, Value>>, Option<&Map<String, Value>>) -> C,
    child_type: impl Fn(&C) -> DiffType,
) -> (Vec<FieldDiff>, Vec<ObjectDiff>, Vec<C>, bool) {
    let (os, ns) = (
        old.map(|m| shape_of(m, skip)),
        new.map(|m| shape_of(m, skip)),
    );
    let fields = field_diffs(
        os.as_ref().map(|s| &s.fields),
        ns.as_ref().map(|s| &s.fields),
        false,
    );
    let objects = object_diffs(os.as_ref(), ns.as_ref());
    let (oc, nc) = (
        named(old.and_then(|m| m.get(children))),
        named(new.and_then(|m| m.get(children))),
    );
    let diffs: Vec<C> = union_names(&oc, &nc)
        .into_iter()
        .map(|c| child(c, find(&oc, c), find(&nc, c)))
        .collect();
    let changed = !fields.is_empty()
        || !objects.is_empty()
        || diffs.iter().any(|c| child_type(c) != DiffType::None);
    (fields, objects, diffs, changed)
}

fn group_diff(
    name: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> TaskGroupDiff {
    let (fields, objects, tasks, changed) =
        level_diff(old, new, GROUP_SKIP, "Tasks", task_diff, |t: &TaskDiff| {
            t.r#type
        });
    TaskGroupDiff {
        r#type: kind(old.is_some(), new.is_some(), changed),
        name: name.to_string(),
        fields,
        objects,
        tasks,
        updates: BTreeMap::new(),
    }
}

/// The diff from `old` (the job as registered, if it is) to `new` (the job as it would be,
/// `None` when it would be removed). Bookkeeping (version, indexes, status) never shows;
/// `Stop` does, as Nomad shows it.
pub fn job_diff(old: Option<&Job>, new: Option<&Job>) -> JobDiff {
    let id = new.or(old).map(|j| j.id.clone()).unwrap_or_default();
    let (oj, nj) = (old.map(to_api_job), new.map(to_api_job));
    let (om, nm) = (
        oj.as_ref().and_then(Value::as_object),
        nj.as_ref().and_then(Value::as_object),
    );
    let (fields, objects, task_groups, changed) = level_diff(
        om,
        nm,
        JOB_SKIP,
        "TaskGroups",
        group_diff,
        |g: &TaskGroupDiff| g.r#type,
    );
    JobDiff {
        r#type: kind(old.is_some(), new.is_some(), changed),
        id,
        fields,
        objects,
        task_groups,
    }
}
