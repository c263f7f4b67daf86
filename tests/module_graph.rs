//! No import circles between the library's files.
//!
//! Reads src/lib.rs and every module file it declares, resolves each path that
//! names an item of this crate to the FILE that defines the item, and fails
//! listing every circle (strongly connected set of files) with the references
//! that make it.
//!
//! What counts as "file A depends on file B":
//! - A path in A that names an item defined in B: `use` lines, paths in code,
//!   types, patterns and trait bounds, and paths inside macro calls (scanned as
//!   tokens: `crate::`, `$crate::`, `super::`, `self::`, or a name bound in
//!   scope followed by `::`). `#[cfg(test)]` code counts: it is the same crate.
//! - A path goes through the deepest module it names; a name that module binds
//!   with `use` (a re-export, or a private import seen by a child module) is
//!   followed to where it points, so `crate::participant::events::MediaKind`
//!   re-exported from `media::kind` is an edge to src/media/kind.rs.
//! - Not edges: `mod x;` declarations; a module's `pub use` of items of its own
//!   descendants (the facade of a mod.rs / lib.rs — its users get the edge to
//!   the defining file instead); a `use` that only names a module (an alias —
//!   the paths through it are the edges); references within one file.
//! - src/main.rs is a crate of its own (the binary) that can only depend on
//!   the library, so it is not part of the graph.
//! - Not followed: items of an inline module inside a function body.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::Visit;

/// Circles that exist today and are being removed elsewhere. Each entry is the
/// exact set of files of one circle; the test fails if a listed circle is gone
/// or has changed (so delete the entry when its circle is fixed). Empty: keep it so.
const KNOWN_CIRCLES_BEING_REMOVED: &[&[&str]] = &[];

#[test]
fn library_files_import_each_other_without_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = Graph::of_crate(root, "src/lib.rs");

    let mut unread = rust_files_under(&root.join("src"), root);
    unread.retain(|f| f != "src/main.rs" && !graph.files.contains(f));
    assert!(unread.is_empty(), "files under src/ that are no module of the library: {unread:?}");

    let found = graph.circles();
    let known: BTreeSet<BTreeSet<String>> =
        KNOWN_CIRCLES_BEING_REMOVED.iter().map(|c| c.iter().map(|f| f.to_string()).collect()).collect();
    let unexpected: Vec<_> = found.iter().filter(|c| !known.contains(*c)).collect();
    let gone: Vec<_> = known.iter().filter(|c| !found.contains(*c)).collect();
    let mut report = String::new();
    for circle in &unexpected {
        report += &graph.describe(circle);
    }
    for circle in &gone {
        report += &format!("no longer a circle, delete it from KNOWN_CIRCLES_BEING_REMOVED: {circle:?}\n");
    }
    assert!(report.is_empty(), "import circles between files:\n{report}");
}

#[test]
fn circles_through_use_lines_code_paths_and_macros_are_found() {
    let src = fixture(&[
        ("lib.rs", "mod a; mod b; mod c; mod d; mod e;"),
        ("a.rs", "use crate::b::B; pub struct A;"),
        ("b.rs", "pub struct B; fn f() -> super::a::A { super::a::A }"),
        // c → d only inside a macro call, d → c only in a type in a function body.
        ("c.rs", "pub struct C; fn f() { println!(\"{:?}\", crate::d::D); }"),
        ("d.rs", "#[derive(Debug)] pub struct D; fn g() { let _x: Option<crate::c::C> = None; }"),
        // e is used by a and uses nothing: no circle.
        ("e.rs", "pub const E: u8 = 1;"),
    ]);
    let graph = Graph::of_crate(src.path(), "src/lib.rs");
    assert_eq!(graph.circles(), circles(&[&["src/a.rs", "src/b.rs"], &["src/c.rs", "src/d.rs"]]));
}

#[test]
fn re_exports_are_followed_to_the_defining_file_and_facades_are_no_edge_source() {
    let src = fixture(&[
        ("lib.rs", "pub mod m; pub mod util; pub mod lone; pub use m::Thing;"),
        // A facade: declares and re-exports; its child uses a sibling through `super`.
        ("m/mod.rs", "mod inner; mod other; pub use inner::Thing; pub use other::*;"),
        ("m/inner.rs", "pub struct Thing(pub crate::util::U);"),
        ("m/other.rs", "pub struct Other; fn f() -> super::inner::Thing { todo!() }"),
        // util reaches inner only through two re-exports (lib.rs and m/mod.rs) and an alias.
        ("util.rs", "use crate::m; pub struct U; fn f(_: m::Thing) {} fn g(_: crate::Thing) {}"),
        // A glob re-export is followed too, but lone → other is not part of any circle.
        ("lone.rs", "fn f(_: crate::m::Other) {}"),
    ]);
    let graph = Graph::of_crate(src.path(), "src/lib.rs");
    assert_eq!(graph.circles(), circles(&[&["src/m/inner.rs", "src/util.rs"]]));
    assert!(graph.edges.contains_key(&("src/lone.rs".into(), "src/m/other.rs".into())));
    assert!(!graph.edges.keys().any(|(from, _)| from == "src/m/mod.rs" || from == "src/lib.rs"));
}

#[test]
fn a_child_reaching_back_into_code_of_its_mod_rs_is_a_circle() {
    let src = fixture(&[
        ("lib.rs", "mod net;"),
        ("net/mod.rs", "mod conn; pub struct Config; fn open() { conn::dial(); }"),
        ("net/conn.rs", "use super::Config; pub fn dial() { let _ = Config; }"),
    ]);
    let graph = Graph::of_crate(src.path(), "src/lib.rs");
    assert_eq!(graph.circles(), circles(&[&["src/net/conn.rs", "src/net/mod.rs"]]));
}

fn circles(sets: &[&[&str]]) -> BTreeSet<BTreeSet<String>> {
    sets.iter().map(|c| c.iter().map(|f| f.to_string()).collect()).collect()
}

fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join("src").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn rust_files_under(dir: &Path, root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files_under(&path, root));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.insert(relative(&path, root));
        }
    }
    found
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/")
}

/// A module path from the crate root: `["participant", "events"]`.
type ModPath = Vec<String>;

/// What one module (a file, or an inline `mod x { .. }`) declares.
#[derive(Default)]
struct Module {
    file: String,
    children: HashSet<String>,
    /// Items defined here (structs, functions, constants, ...).
    defined: HashSet<String>,
    /// Names bound by `use`, to the absolute path they name.
    bindings: HashMap<String, ModPath>,
    /// Modules glob-imported with `use m::*`.
    globs: Vec<ModPath>,
}

/// One path as written, in the module it is written in.
struct Reference {
    module: ModPath,
    segments: Vec<String>,
    line: usize,
    /// From a `use` line (first segment resolved the way `use` resolves it).
    from_use: Option<UseKind>,
}

#[derive(Clone, Copy, PartialEq)]
enum UseKind {
    Private,
    Public,
    Glob { public: bool },
}

/// The file-level dependency graph of one crate.
struct Graph {
    files: BTreeSet<String>,
    /// (from, to) → the references that make the edge (`file:line path`).
    edges: BTreeMap<(String, String), Vec<String>>,
}

impl Graph {
    fn of_crate(root: &Path, crate_root: &str) -> Graph {
        let mut reader = CrateReader { root: root.to_path_buf(), modules: BTreeMap::new(), references: Vec::new() };
        let root_file = root.join(crate_root);
        let parsed = parse(&root_file);
        reader.read_module(Vec::new(), &root_file, root.join(crate_root).parent().unwrap(), &parsed.items);
        reader.into_graph()
    }

    /// Every set of two or more files that reach each other.
    fn circles(&self) -> BTreeSet<BTreeSet<String>> {
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (from, to) in self.edges.keys() {
            next.entry(from.as_str()).or_default().push(to.as_str());
        }
        let reach = |start: &str| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![start];
            while let Some(f) = todo.pop() {
                for &n in next.get(f).into_iter().flatten() {
                    if seen.insert(n) {
                        todo.push(n);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&str, BTreeSet<&str>> = self.files.iter().map(|f| (f.as_str(), reach(f))).collect();
        let mut circles = BTreeSet::new();
        for (&file, reached) in &reaches {
            let circle: BTreeSet<String> = reached
                .iter()
                .filter(|other| reaches[**other].contains(file))
                .map(|f| f.to_string())
                .chain([file.to_string()])
                .collect();
            if circle.len() > 1 {
                circles.insert(circle);
            }
        }
        circles
    }

    fn describe(&self, circle: &BTreeSet<String>) -> String {
        let mut text = format!("circle: {}\n", circle.iter().cloned().collect::<Vec<_>>().join(", "));
        for ((from, to), why) in &self.edges {
            if circle.contains(from) && circle.contains(to) {
                text += &format!("  {from} → {to}: {}\n", why.join(", "));
            }
        }
        text
    }
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

struct CrateReader {
    root: PathBuf,
    modules: BTreeMap<ModPath, Module>,
    references: Vec<Reference>,
}

impl CrateReader {
    /// Reads one module's items; `dir` is where its `mod x;` files live.
    fn read_module(&mut self, path: ModPath, file: &Path, dir: &Path, items: &[syn::Item]) {
        let file_name = relative(file, &self.root);
        self.modules.insert(path.clone(), Module { file: file_name, ..Module::default() });
        let mut collector = PathCollector { module: path.clone(), references: Vec::new(), uses: Vec::new() };
        for item in items {
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    self.modules.get_mut(&path).unwrap().children.insert(name.clone());
                    let child: ModPath = path.iter().cloned().chain([name.clone()]).collect();
                    match &m.content {
                        Some((_, inline)) => self.read_module(child, file, &dir.join(&name), inline),
                        None => {
                            let flat = dir.join(format!("{name}.rs"));
                            let child_file = if flat.exists() { flat } else { dir.join(&name).join("mod.rs") };
                            let parsed = parse(&child_file);
                            self.read_module(child, &child_file, &dir.join(&name), &parsed.items);
                        }
                    }
                }
                other => {
                    if let Some(name) = defined_name(other) {
                        self.modules.get_mut(&path).unwrap().defined.insert(name);
                    }
                    collector.visit_item(other);
                }
            }
        }
        self.references.extend(collector.references);
        for (tree, public, line) in collector.uses {
            self.read_use(&path, tree, public, line, Vec::new());
        }
    }

    /// Records the bindings of one `use` tree and the references it makes.
    fn read_use(&mut self, module: &ModPath, tree: &syn::UseTree, public: bool, line: usize, prefix: Vec<String>) {
        let joined = |name: &str| prefix.iter().cloned().chain([name.to_string()]).collect::<Vec<_>>();
        let (segments, bound, kind) = match tree {
            syn::UseTree::Path(p) => {
                return self.read_use(module, &p.tree, public, line, joined(&p.ident.to_string()));
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.read_use(module, t, public, line, prefix.clone());
                }
                return;
            }
            syn::UseTree::Name(n) if n.ident == "self" => {
                let bound = prefix.last().cloned();
                (prefix.clone(), bound, if public { UseKind::Public } else { UseKind::Private })
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                (joined(&name), Some(name), if public { UseKind::Public } else { UseKind::Private })
            }
            syn::UseTree::Rename(r) => {
                let bound = Some(r.rename.to_string());
                (joined(&r.ident.to_string()), bound, if public { UseKind::Public } else { UseKind::Private })
            }
            syn::UseTree::Glob(_) => (prefix.clone(), None, UseKind::Glob { public }),
        };
        let Some(absolute) = self.absolute_use_path(module, &segments) else { return };
        match (&bound, kind) {
            (Some(name), _) => {
                self.modules.get_mut(module).unwrap().bindings.insert(name.clone(), absolute.clone());
            }
            (None, _) => self.modules.get_mut(module).unwrap().globs.push(absolute.clone()),
        }
        self.references.push(Reference { module: module.clone(), segments: absolute, line, from_use: Some(kind) });
    }

    /// Where a `use` path starts: `crate`, `super`, `self`, a child module or
    /// an item of this module; None for other crates.
    fn absolute_use_path(&self, module: &ModPath, segments: &[String]) -> Option<ModPath> {
        let (start, rest) = self.start_of(module, segments)?;
        Some(start.into_iter().chain(rest.iter().cloned()).collect())
    }

    fn start_of<'s>(&self, module: &ModPath, segments: &'s [String]) -> Option<(ModPath, &'s [String])> {
        let first = segments.first()?;
        match first.as_str() {
            "crate" | "$crate" => Some((Vec::new(), &segments[1..])),
            "self" => Some((module.clone(), &segments[1..])),
            "super" => {
                let mut base = module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some((base, rest))
            }
            name => {
                let m = &self.modules[module];
                if m.children.contains(name) || m.defined.contains(name) {
                    Some((module.clone(), segments))
                } else {
                    None
                }
            }
        }
    }

    fn into_graph(self) -> Graph {
        let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in &self.references {
            let Some(absolute) = self.absolute_reference(r) else { continue };
            if self.is_no_edge(r, &absolute) {
                continue;
            }
            let from = &self.modules[&r.module].file;
            let to = self.defining_file(&absolute, 0);
            if from != &to {
                let why = edges.entry((from.clone(), to)).or_default();
                if why.len() < 3 {
                    let written = if r.from_use.is_some() { "crate::" } else { "" };
                    why.push(format!("{from}:{} `{written}{}`", r.line, r.segments.join("::")));
                }
            }
        }
        Graph { files: self.modules.values().map(|m| m.file.clone()).collect(), edges }
    }

    fn absolute_reference(&self, r: &Reference) -> Option<ModPath> {
        if r.from_use.is_some() {
            return Some(r.segments.clone());
        }
        // A lone name equal to a child module's is a local variable (a module is no value).
        let lone_module_name = r.segments.len() == 1 && self.modules[&r.module].children.contains(&r.segments[0]);
        if let Some((start, rest)) = self.start_of(r.module.as_ref(), &r.segments)
            && !lone_module_name
        {
            return Some(start.into_iter().chain(rest.iter().cloned()).collect());
        }
        // A name bound by `use` in this module (or seen through its globs).
        let target = self.binding(&r.module, &r.segments[0], 0)?;
        Some(target.into_iter().chain(r.segments[1..].iter().cloned()).collect())
    }

    /// Facade re-exports of a module's own descendants and plain module aliases are no edges.
    fn is_no_edge(&self, r: &Reference, absolute: &ModPath) -> bool {
        let descendant = absolute.len() > r.module.len() && absolute.starts_with(&r.module);
        match r.from_use {
            Some(UseKind::Public) | Some(UseKind::Glob { public: true }) if descendant => true,
            Some(UseKind::Public) | Some(UseKind::Private) => self.modules.contains_key(absolute),
            _ => false,
        }
    }

    fn binding(&self, module: &ModPath, name: &str, depth: usize) -> Option<ModPath> {
        let m = self.modules.get(module)?;
        if let Some(target) = m.bindings.get(name) {
            return Some(target.clone());
        }
        if depth > 8 {
            return None;
        }
        m.globs.iter().find_map(|g| {
            let gm = self.modules.get(g)?;
            if gm.children.contains(name) || gm.defined.contains(name) {
                Some(g.iter().cloned().chain([name.to_string()]).collect())
            } else {
                self.binding(g, name, depth + 1)
            }
        })
    }

    /// The file defining what `absolute` names, following `use` bindings.
    fn defining_file(&self, absolute: &ModPath, depth: usize) -> String {
        let depth_of_module = (0..=absolute.len()).rev().find(|&k| self.modules.contains_key(&absolute[..k])).unwrap();
        let module = &self.modules[&absolute[..depth_of_module]];
        let Some(name) = absolute.get(depth_of_module) else { return module.file.clone() };
        if module.defined.contains(name) || depth > 8 {
            return module.file.clone();
        }
        match self.binding(&absolute[..depth_of_module].to_vec(), name, 0) {
            Some(target) => {
                let followed: ModPath =
                    target.into_iter().chain(absolute[depth_of_module + 1..].iter().cloned()).collect();
                self.defining_file(&followed, depth + 1)
            }
            None => module.file.clone(),
        }
    }
}

fn defined_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Collects the paths and `use` trees of one module's items (not of its child modules).
struct PathCollector<'ast> {
    module: ModPath,
    references: Vec<Reference>,
    uses: Vec<(&'ast syn::UseTree, bool, usize)>,
}

impl PathCollector<'_> {
    fn push(&mut self, segments: Vec<String>, line: usize) {
        if segments.first().is_some_and(|s| s != "Self") {
            self.references.push(Reference { module: self.module.clone(), segments, line, from_use: None });
        }
    }

    /// `a::b::c` sequences in a macro's tokens (nested groups included).
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(first) => {
                    let after_dollar = i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let mut segments = vec![if after_dollar { format!("${first}") } else { first.to_string() }];
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(next))) =
                        (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                    {
                        if !(a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':') {
                            break;
                        }
                        segments.push(next.to_string());
                        i += 3;
                    }
                    if segments.len() > 1 {
                        self.push(segments, first.span().start().line);
                    }
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector<'ast> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.push(segments, path.segments[0].ident.span().start().line);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let public = !matches!(item.vis, syn::Visibility::Inherited);
        self.uses.push((&item.tree, public, item.use_token.span.start().line));
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
}
