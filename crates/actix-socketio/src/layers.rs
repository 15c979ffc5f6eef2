//! Keeps the module graph layered: every `crate::`, `super::` and `self::` path in the code of
//! a module must name a module listed before it in [`LAYERS`] (or the module itself). Root
//! re-exports (`crate::Config`) resolve to the crate root, which is last: code inside the crate
//! names the defining module.

use std::{fs, path::Path};

/// Every module of the crate, bottom up, with its layer.
const LAYERS: &[(&str, &str)] = &[
    ("config", "base"),
    ("error", "base"),
    ("registry", "base"),
    ("engine::reason", "engine"),
    ("engine::request", "engine"),
    ("engine::frame", "engine"),
    ("engine::conn", "engine"),
    ("engine::server", "engine"),
    ("engine::driver", "engine"),
    ("takeover", "engine"),
    ("engine::transport::http", "engine"),
    ("engine::transport::ws_io", "engine"),
    ("engine::transport::polling", "engine"),
    ("engine::transport::websocket", "engine"),
    ("engine::transport", "engine"),
    ("engine::plain", "engine"),
    ("engine", "engine"),
    ("socketio::packet", "socketio"),
    ("socketio::ack", "socketio"),
    ("socketio::event", "socketio"),
    ("socketio::socket", "socketio"),
    ("socketio::handler", "socketio"),
    ("socketio::dispatch", "socketio"),
    ("socketio::layer", "socketio"),
    ("socketio::server", "socketio"),
    ("socketio", "socketio"),
    ("fuzzing", "entry points"),
    ("", "entry points"),
];

/// This file: its string literals hold the prefixes it looks for.
const CHECKER: &str = "layers";

/// The module path of a source file (`engine/conn.rs` → `engine::conn`, `lib.rs` → ``).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if let Some(file) = parts.pop() {
        let stem = file.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_owned());
        }
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let module = module_of(path.strip_prefix(root).unwrap());
            out.push((module, fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The code of a file without comments and without its `mod tests`.
fn code(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        if line.trim_start() == "mod tests {" {
            break;
        }
        let line = line.find("//").map_or(line, |index| &line[..index]);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parses a use tree (or a plain path) after `crate::`, flattening it into paths.
fn parse_tree(text: &[u8], pos: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let skip_space = |pos: &mut usize| {
        while *pos < text.len() && text[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
    };
    skip_space(pos);
    if text.get(*pos) == Some(&b'{') {
        *pos += 1;
        loop {
            skip_space(pos);
            match text.get(*pos) {
                Some(b'}') | None => break,
                Some(b',') => *pos += 1,
                Some(_) => parse_tree(text, pos, prefix, out),
            }
        }
        *pos += 1;
        return;
    }
    let start = *pos;
    while *pos < text.len() && (text[*pos].is_ascii_alphanumeric() || text[*pos] == b'_') {
        *pos += 1;
    }
    let ident = String::from_utf8_lossy(&text[start..*pos]).into_owned();
    let mut path = prefix.to_vec();
    if !ident.is_empty() && ident != "self" {
        path.push(ident);
    }
    if text[*pos..].starts_with(b"::") && !text[*pos + 2..].starts_with(b"<") {
        *pos += 2;
        parse_tree(text, pos, &path, out);
        return;
    }
    out.push(path);
    // `X as Y`: the alias names nothing.
    skip_space(pos);
    if text[*pos..].starts_with(b"as ") {
        *pos += 3;
        skip_space(pos);
        while *pos < text.len() && (text[*pos].is_ascii_alphanumeric() || text[*pos] == b'_') {
            *pos += 1;
        }
    }
}

/// Every module path the code of `module` refers to, resolved against the known modules.
fn references(module: &str, code: &str, known: &[&str]) -> Vec<String> {
    let text = code.as_bytes();
    let own: Vec<String> = module
        .split("::")
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect();
    let mut paths = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", own[..own.len().saturating_sub(1)].to_vec()),
        ("self::", own.clone()),
    ] {
        let mut from = 0;
        while let Some(found) = code[from..].find(prefix) {
            let at = from + found;
            from = at + prefix.len();
            let boundary =
                at == 0 || !(text[at - 1].is_ascii_alphanumeric() || text[at - 1] == b'_');
            if boundary {
                let mut pos = from;
                parse_tree(text, &mut pos, &base, &mut paths);
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            (0..=path.len())
                .rev()
                .map(|len| path[..len].join("::"))
                .find(|candidate| known.contains(&candidate.as_str()))
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn modules_import_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let known: Vec<&str> = LAYERS.iter().map(|(module, _)| *module).collect();
    let rank = |module: &str| known.iter().position(|known| *known == module);
    let mut violations = Vec::new();
    for (module, source) in &files {
        if module == CHECKER {
            continue;
        }
        let Some(own_rank) = rank(module) else {
            violations.push(format!("`{module}` is missing from LAYERS"));
            continue;
        };
        for target in references(module, &code(source), &known) {
            let target_rank = rank(&target).unwrap();
            if target_rank > own_rank {
                let target = if target.is_empty() {
                    "the crate root"
                } else {
                    &target
                };
                violations.push(format!("`{module}` imports `{target}`, listed above it"));
            }
        }
    }
    for (module, _) in LAYERS {
        if !files.iter().any(|(file, _)| file == module) {
            violations.push(format!("`{module}` in LAYERS has no file"));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn layers_are_contiguous_and_the_parser_sees_use_trees() {
    let mut seen: Vec<&str> = Vec::new();
    for (_, layer) in LAYERS {
        if seen.last() != Some(layer) {
            assert!(!seen.contains(layer), "layer `{layer}` is split");
            seen.push(layer);
        }
    }
    let known = ["a", "a::b", "c", ""];
    let code =
        "use crate::{a::{b::X, Y as W}, c::{self, z}};\nlet v = crate::Root;\nsuper::c::f();";
    assert_eq!(
        references("a::b", code, &known),
        ["a::b", "a", "c", "c", "", "a"]
    );
}
