//! Walks over an object by its schema, as structured-merge-diff's typed walkers: the field set
//! of an applied configuration, the comparison of two objects (added, modified, removed
//! fields), the merge of a configuration into a live object, and the removal of fields no
//! manager owns any more.
//!
//! Written here rather than taken from a library: structured-merge-diff is Go and no Rust crate
//! implements it. One deliberate difference: kube-apiserver compares against Go structs, where a
//! non-pointer struct or a list is present even when empty, so adding one never marks the node
//! itself (`.`); this walk, over JSON, does not mark structs and lists either, only map entries
//! and list items (so a pointer struct such as `securityContext` lacks the `.` a real server
//! gives it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::schema::{Schema, Ty};
use super::set::{Pe, Set};

/// The paths of `config` (structured-merge-diff's `ToFieldSet`).
pub fn field_set(sc: &Schema, config: &Value) -> Set {
    let mut out = Set::default();
    fs_node(sc, sc.root_ty(), config, &mut Vec::new(), &mut out);
    out
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn fs_node(sc: &Schema, ty: Ty, v: &Value, path: &mut Vec<Pe>, out: &mut Set) {
    match (ty, v) {
        (Ty::Struct(_) | Ty::Map(_), Value::Object(m)) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                fs_node(sc, sc.ty(sc.field(ty, k)), child, path, out);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !sc.declared(ty, k) {
                    out.insert(path);
                }
                path.pop();
            }
        }
        (Ty::Set | Ty::Keyed(..), Value::Array(items)) => {
            let item_ty = sc.ty(sc.items(ty));
            let pes: Vec<Option<Pe>> = items.iter().map(|i| sc.item_pe(ty, i)).collect();
            let mut counts: BTreeMap<&Pe, usize> = BTreeMap::new();
            for pe in pes.iter().flatten() {
                *counts.entry(pe).or_default() += 1;
            }
            for (item, pe) in items.iter().zip(&pes) {
                let Some(pe) = pe else { continue };
                path.push(pe.clone());
                if counts[pe] == 1 {
                    fs_node(sc, item_ty, item, path, out);
                }
                out.insert(path);
                path.pop();
            }
        }
        (Ty::Struct(_) | Ty::Map(_) | Ty::Set | Ty::Keyed(..), Value::Null) => {}
        _ => out.insert(path),
    }
}

/// What changed from one object to another.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Fields only the new object has.
    pub added: Set,
    /// Fields both have, with other values.
    pub modified: Set,
    /// Fields only the old object has.
    pub removed: Set,
}

/// Compares `old` with `new` (structured-merge-diff's `Compare`).
pub fn compare(sc: &Schema, old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    cmp_node(
        sc,
        sc.root_ty(),
        Some(old),
        Some(new),
        &mut Vec::new(),
        &mut c,
    );
    c
}

fn cmp_leaf(l: Option<&Value>, r: Option<&Value>, path: &[Pe], c: &mut Comparison) {
    match (l, r) {
        (None, _) => c.added.insert(path),
        (_, None) => c.removed.insert(path),
        (Some(a), Some(b)) if a != b => c.modified.insert(path),
        _ => {}
    }
}

fn cmp_node(
    sc: &Schema,
    ty: Ty,
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let both_empty = l.is_none_or(is_empty_value) && r.is_none_or(is_empty_value);
    match ty {
        Ty::Struct(_) | Ty::Map(_) if !both_empty => {
            let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
            if (l.is_some() && lm.is_none()) || (r.is_some() && rm.is_none()) {
                return cmp_leaf(l, r, path, c);
            }
            for k in union_keys(lm, rm) {
                path.push(Pe::Field(k.to_string()));
                let (lv, rv) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
                cmp_node(sc, sc.ty(sc.field(ty, k)), lv, rv, path, c);
                path.pop();
            }
            if matches!(ty, Ty::Map(_)) {
                mark_node(l, r, path, c);
            }
        }
        Ty::Set | Ty::Keyed(..) if !both_empty => {
            let (la, ra) = (l.and_then(Value::as_array), r.and_then(Value::as_array));
            if (l.is_some() && la.is_none()) || (r.is_some() && ra.is_none()) {
                return cmp_leaf(l, r, path, c);
            }
            cmp_items(sc, ty, la, ra, path, c);
        }
        _ => cmp_leaf(l, r, path, c),
    }
}

fn mark_node(l: Option<&Value>, r: Option<&Value>, path: &[Pe], c: &mut Comparison) {
    if l.is_none() {
        c.added.insert(path);
    } else if r.is_none() {
        c.removed.insert(path);
    }
}

fn union_keys<'a>(
    l: Option<&'a Map<String, Value>>,
    r: Option<&'a Map<String, Value>>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = l
        .into_iter()
        .flat_map(|m| m.keys())
        .map(String::as_str)
        .collect();
    let seen: BTreeSet<&str> = keys.iter().copied().collect();
    keys.extend(
        r.into_iter()
            .flat_map(|m| m.keys())
            .map(String::as_str)
            .filter(|k| !seen.contains(k)),
    );
    keys
}

/// A list's items grouped by path element, in first-seen order.
fn group<'v>(sc: &Schema, ty: Ty, items: Option<&'v Vec<Value>>) -> Vec<(Pe, Vec<&'v Value>)> {
    let mut out: Vec<(Pe, Vec<&Value>)> = Vec::new();
    for item in items.into_iter().flatten() {
        let Some(pe) = sc.item_pe(ty, item) else {
            continue;
        };
        match out.iter_mut().find(|(p, _)| *p == pe) {
            Some((_, vs)) => vs.push(item),
            None => out.push((pe, vec![item])),
        }
    }
    out
}

/// The items of a grouped list that have path element `pe`.
fn items_at<'g, 'v>(groups: &'g [(Pe, Vec<&'v Value>)], pe: &Pe) -> &'g [&'v Value] {
    groups
        .iter()
        .find(|(p, _)| p == pe)
        .map_or(&[][..], |(_, v)| v.as_slice())
}

fn cmp_items(
    sc: &Schema,
    ty: Ty,
    la: Option<&Vec<Value>>,
    ra: Option<&Vec<Value>>,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let item_ty = sc.ty(sc.items(ty));
    let (lg, rg) = (group(sc, ty, la), group(sc, ty, ra));
    let mut pes: Vec<&Pe> = lg.iter().map(|(p, _)| p).collect();
    pes.extend(
        rg.iter()
            .map(|(p, _)| p)
            .filter(|p| !lg.iter().any(|(q, _)| q == *p)),
    );
    for pe in pes {
        let (lv, rv) = (items_at(&lg, pe), items_at(&rg, pe));
        path.push(pe.clone());
        match (lv.len(), rv.len()) {
            (0..=1, 0..=1) => {
                let (l, r) = (lv.first().copied(), rv.first().copied());
                cmp_node(sc, item_ty, l, r, path, c);
                mark_node(l, r, path, c);
            }
            (2.., 2..) if lv != rv => c.modified.insert(path),
            (2.., 2..) => {}
            (2.., _) => c.removed.insert(path),
            (_, _) => c.added.insert(path),
        }
        path.pop();
    }
}

/// Merges an applied configuration into the live object (structured-merge-diff's `Merge`):
/// the configuration's values win, keyed list items merge by key.
pub fn merge(sc: &Schema, live: &Value, config: &Value) -> Value {
    merge_node(sc, sc.root_ty(), Some(live), Some(config)).unwrap_or(Value::Null)
}

fn merge_node(sc: &Schema, ty: Ty, l: Option<&Value>, r: Option<&Value>) -> Option<Value> {
    let both_empty = l.is_none_or(is_empty_value) && r.is_none_or(is_empty_value);
    let objects = l.is_none_or(Value::is_object) && r.is_none_or(Value::is_object);
    let arrays = l.is_none_or(Value::is_array) && r.is_none_or(Value::is_array);
    match ty {
        Ty::Struct(_) | Ty::Map(_) if !both_empty && objects => {
            let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
            let mut out = Map::new();
            for k in union_keys(lm, rm) {
                let (lv, rv) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
                if let Some(v) = merge_node(sc, sc.ty(sc.field(ty, k)), lv, rv) {
                    out.insert(k.to_string(), v);
                }
            }
            Some(Value::Object(out))
        }
        Ty::Set | Ty::Keyed(..) if !both_empty && arrays => Some(Value::Array(merge_items(
            sc,
            ty,
            l.and_then(Value::as_array),
            r.and_then(Value::as_array),
        ))),
        _ => r.or(l).cloned(),
    }
}

/// The merged items of a keyed list or set, in structured-merge-diff's order: the live order,
/// with the configuration's items where the configuration puts them among the shared ones.
fn merge_items(
    sc: &Schema,
    ty: Ty,
    la: Option<&Vec<Value>>,
    ra: Option<&Vec<Value>>,
) -> Vec<Value> {
    let item_ty = sc.ty(sc.items(ty));
    let pe_of = |v: &Value| sc.item_pe(ty, v);
    let lhs: Vec<(Option<Pe>, &Value)> = la.into_iter().flatten().map(|v| (pe_of(v), v)).collect();
    let mut rhs: Vec<(Option<Pe>, &Value)> = Vec::new();
    for v in ra.into_iter().flatten() {
        let pe = pe_of(v);
        if !rhs.iter().any(|(p, _)| *p == pe) {
            rhs.push((pe, v));
        }
    }
    let in_lhs = |pe: &Option<Pe>| lhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let in_rhs = |pe: &Option<Pe>| rhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let mut shared = rhs
        .iter()
        .filter(|(p, _)| in_lhs(p).is_some())
        .map(|(p, _)| p.clone());
    let mut next_shared = shared.next();
    let mut merged_rhs: Vec<Option<Pe>> = Vec::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri].0 {
                merged_rhs.push(pe.clone());
                out.extend(merge_node(sc, item_ty, in_lhs(pe), in_rhs(pe)));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(pe).is_some() && next_shared.as_ref().is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs[li].0;
            if in_rhs(pe).is_none() {
                out.extend(merge_node(sc, item_ty, Some(lhs[li].1), None));
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs[ri].0;
            merged_rhs.push(pe.clone());
            out.extend(merge_node(sc, item_ty, in_lhs(pe), in_rhs(pe)));
            ri += 1;
            if next_shared.as_ref() == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Removes from `obj` the fields of `gone` that no path of `keep` touches; a struct or list
/// that `gone` names and that is left empty goes too.
pub fn remove(sc: &Schema, obj: &mut Value, gone: &Set, keep: &Set) {
    remove_node(sc, sc.root_ty(), obj, gone, keep);
}

fn remove_node(sc: &Schema, ty: Ty, v: &mut Value, gone: &Set, keep: &Set) {
    let empty = Set::default();
    match (ty, v) {
        (Ty::Struct(_) | Ty::Map(_), Value::Object(m)) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let pe = Pe::Field(k.clone());
                let drop = match (gone.has_member(&pe), gone.child(&pe)) {
                    (true, _) => !keep.touches(&pe),
                    (false, Some(g)) => {
                        let child = m.get_mut(&k).expect("key listed above");
                        let kept = keep.child(&pe).unwrap_or(&empty);
                        remove_node(sc, sc.ty(sc.field(ty, &k)), child, g, kept);
                        is_empty_value(child) && !keep.touches(&pe)
                    }
                    (false, None) => false,
                };
                if drop {
                    m.remove(&k);
                }
            }
        }
        (Ty::Set | Ty::Keyed(..), Value::Array(items)) => {
            let item_ty = sc.ty(sc.items(ty));
            items.retain_mut(|item| {
                let Some(pe) = sc.item_pe(ty, item) else {
                    return true;
                };
                if gone.has_member(&pe) && !keep.touches(&pe) {
                    return false;
                }
                if let Some(g) = gone.child(&pe) {
                    remove_node(sc, item_ty, item, g, keep.child(&pe).unwrap_or(&empty));
                }
                true
            });
        }
        _ => {}
    }
}

/// The first field of `config` its schema does not declare, as structured-merge-diff prints it
/// (`.spec.template.spec.containers[name="flow"].comand`).
pub fn first_undeclared(sc: &Schema, config: &Value) -> Option<String> {
    undeclared_in(sc, sc.root_ty(), config, &mut Vec::new())
}

fn undeclared_in(sc: &Schema, ty: Ty, v: &Value, path: &mut Vec<Pe>) -> Option<String> {
    match (ty, v) {
        (Ty::Struct(_) | Ty::Map(_), Value::Object(m)) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                if matches!(ty, Ty::Struct(_)) && sc.field(ty, k).is_none() {
                    return Some(super::set::path_string(path));
                }
                let found = undeclared_in(sc, sc.ty(sc.field(ty, k)), child, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (Ty::Keyed(..), Value::Array(items)) => {
            let item_ty = sc.ty(sc.items(ty));
            items.iter().find_map(|item| {
                path.push(sc.item_pe(ty, item)?);
                let found = undeclared_in(sc, item_ty, item, path);
                path.pop();
                found
            })
        }
        _ => None,
    }
}
