//! The structure the library keeps, checked on its source (no GPU): modules use only the
//! layers below them and no module circle closes through imports; no file is over 600 lines
//! and no function over 120; and the library neither prints nor exits (the binary, `main.rs`
//! and `cli/`, does the talking).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, bottom up: each may use only those before it.
const LAYERS: &[&str] = &[
    "error", "io", "data", "gpu", "ops", "tune", "graph", "model", "classify", "train", "bench", "fuzzing",
];

/// A source file: its module path (`ops::grouped_conv::forward`), its lines with comments and
/// string contents blanked, and its raw line count.
struct File {
    path: PathBuf,
    module: Vec<String>,
    code: Vec<String>,
    lines: usize,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with its `//` comments removed and the contents of string and char literals blanked,
/// line breaks kept (a string may span lines).
fn code_of(text: &str) -> String {
    let (mut out, mut chars) = (String::new(), text.chars().peekable());
    let (mut in_str, mut in_comment) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                in_comment = false;
                out.push(c);
            }
            _ if in_comment => {}
            '\\' if in_str => {
                chars.next();
            }
            '"' => {
                in_str = !in_str;
                out.push('"');
            }
            _ if in_str => {}
            '/' if chars.peek() == Some(&'/') => in_comment = true,
            '\'' if chars.clone().nth(1) == Some('\'') => {
                chars.nth(1); // a char literal such as '{'
            }
            _ => out.push(c),
        }
    }
    out
}

fn library() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            File {
                module,
                code: code_of(&text).lines().map(String::from).collect(),
                lines: text.lines().count(),
                path,
            }
        })
        .collect()
}

/// Whether the file belongs to the binary rather than the library.
fn binary(f: &File) -> bool {
    f.path.ends_with("main.rs") || f.module.first().is_some_and(|m| m == "cli")
}

/// The modules `f` refers to through `crate::` and `super::` paths, each resolved to the
/// longest prefix that is a module of the crate.
fn uses(f: &File, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let code = f.code.join("\n");
    let idents = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
            .take_while(|p| !p.is_empty())
            .collect()
    };
    for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let (prefix, rest) = code[i..].split_once("::").unwrap();
        let mut path = match prefix {
            "crate" => vec![],
            _ => f.module[..f.module.len().saturating_sub(1)].to_vec(),
        };
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix("super::") {
            path.pop();
            rest = r;
        }
        path.extend(idents(rest));
        while !path.is_empty() && !modules.contains(&path) {
            path.pop();
        }
        if !path.is_empty() && path != f.module {
            out.insert(path);
        }
    }
    out
}

#[test]
fn modules_use_only_the_layers_below_them_and_close_no_circle() {
    let files: Vec<File> = library().into_iter().filter(|f| !binary(f)).collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let rank = |m: &[String]| LAYERS.iter().position(|l| Some(*l) == m.first().map(String::as_str));
    let mut problems = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        if f.module.is_empty() {
            continue; // lib.rs declares and re-exports them all
        }
        let from = rank(&f.module).unwrap_or_else(|| panic!("{}: not in the layer list", f.module.join("::")));
        for target in uses(f, &modules) {
            match rank(&target) {
                Some(to) if to > from => problems.push(format!("{} uses {}, a layer above", f.module.join("::"), target.join("::"))),
                _ => {}
            }
            // A module and its ancestors (which declare and re-export it) are one room.
            if !target.starts_with(&f.module) && !f.module.starts_with(&target) {
                edges.entry(f.module.clone()).or_default().insert(target);
            }
        }
    }
    // Circles: a depth-first search for a back edge.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
        problems: &mut Vec<String>,
    ) {
        state.insert(m.clone(), false);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next) {
                None => visit(next, edges, state, stack, problems),
                Some(false) => {
                    let start = stack.iter().position(|s| s == next).unwrap();
                    let circle: Vec<String> = stack[start..].iter().chain([next]).map(|m| m.join("::")).collect();
                    problems.push(format!("import circle: {}", circle.join(" -> ")));
                }
                Some(true) => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), true);
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if !state.contains_key(m) {
            visit(m, &edges, &mut state, &mut Vec::new(), &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_file_over_600_lines_and_no_function_over_120() {
    let mut problems = Vec::new();
    for f in library() {
        if f.lines > 600 {
            problems.push(format!("{}: {} lines", f.path.display(), f.lines));
        }
        let mut i = 0;
        while i < f.code.len() {
            let line = f.code[i].trim_start();
            let signature = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "];
            let signature = signature.iter().any(|p| line.starts_with(p));
            if !signature {
                i += 1;
                continue;
            }
            let (mut depth, mut opened, mut end) = (0i64, false, i);
            for (j, l) in f.code.iter().enumerate().skip(i) {
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                opened |= l.contains('{');
                end = j;
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            if end + 1 - i > 120 {
                let name = line.split("fn ").nth(1).unwrap_or("").split(['(', '<']).next().unwrap_or("");
                problems.push(format!("{}:{}: fn {name} is {} lines", f.path.display(), i + 1, end + 1 - i));
            }
            i += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_library_neither_prints_nor_exits() {
    let mut problems = Vec::new();
    for f in library().iter().filter(|f| !binary(f)) {
        for (i, line) in f.code.iter().enumerate() {
            const WORDS: [&str; 8] = [
                "println!",
                "eprintln!",
                "print!",
                "eprint!",
                "dbg!",
                "process::exit",
                "stdout()",
                "stderr()",
            ];
            for word in WORDS {
                if line.contains(word) {
                    problems.push(format!("{}:{}: {word}", f.path.display(), i + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
