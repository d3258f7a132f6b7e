//! No file of `src/` depends on itself through other files.
//!
//! A cycle between files is a cycle between concerns: neither can be read, tested or
//! moved without the other. The compiler allows it inside one crate, so this test
//! parses every file of the library with `syn` and builds the graph of which file uses
//! an item defined in which other file:
//!
//! - the module tree is the one `mod` declarations give, from `src/lib.rs` (inline
//!   modules belong to their file; `#[cfg(test)]` items are left out: tests may reach
//!   into anything);
//! - every path is resolved as the compiler does, through `crate::`, `super::`, `self::`,
//!   child modules, `use` bindings and glob re-exports, to the file that defines its
//!   first item (an enum's variant or an associated function counts as its type);
//! - a `pub use` is a re-export, not a use: a module that only passes an item on does
//!   not depend on it, but its own code naming the item does;
//! - paths in macro calls are parsed as the expressions they hold (`format!`,
//!   `assert!`, ...), else read as tokens; comments and strings never count.
//!
//! Then every strongly connected component of more than one file is a cycle. The ones
//! in [`KNOWN`] are tolerated until their layers are restructured; any other fails the
//! test, naming each edge of it with the items used.

use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Cycles tolerated while their layers are restructured, each as the set of its files:
/// a cycle passes when all its files are in one entry. None is left: any cycle fails.
const KNOWN: &[&[&str]] = &[];

type ModuleId = usize;

struct Module {
    file: PathBuf,
    parent: Option<ModuleId>,
    children: BTreeMap<String, ModuleId>,
    items: BTreeSet<String>,
    /// `use` bindings: the name in scope and the path it stands for, as written.
    bindings: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Module(ModuleId),
    /// An item defined in the module's file.
    Item(ModuleId),
}

struct Crate {
    modules: Vec<Module>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && matches!(&attr.meta, syn::Meta::List(list) if list.tokens.to_string() == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    use syn::Item::*;
    let ident = match item {
        Const(i) => &i.ident,
        Enum(i) => &i.ident,
        Fn(i) => &i.sig.ident,
        Macro(i) => i.ident.as_ref()?,
        Static(i) => &i.ident,
        Struct(i) => &i.ident,
        Trait(i) => &i.ident,
        TraitAlias(i) => &i.ident,
        Type(i) => &i.ident,
        Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Each leaf of a `use` tree: the name it binds (None for a glob) and its full path.
fn use_leaves(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            out.push((prefix.last().cloned(), prefix.clone()));
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((Some(n.ident.to_string()), path));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((Some(r.rename.to_string()), path));
        }
        syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                use_leaves(tree, prefix, out);
            }
        }
    }
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut krate = Crate {
            modules: Vec::new(),
        };
        let file = src.join("lib.rs");
        let syntax = parse(&file);
        krate.add_module(src, &file, None, &syntax.items, src);
        krate
    }

    /// Adds the module whose items are `items`, defined in `file`; `dir` is where its
    /// child modules' files are.
    fn add_module(
        &mut self,
        src: &Path,
        file: &Path,
        parent: Option<ModuleId>,
        items: &[syn::Item],
        dir: &Path,
    ) -> ModuleId {
        let id = self.modules.len();
        self.modules.push(Module {
            file: file
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(file)
                .to_path_buf(),
            parent,
            children: BTreeMap::new(),
            items: BTreeSet::new(),
            bindings: BTreeMap::new(),
            globs: Vec::new(),
        });
        for item in items {
            if is_cfg_test(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let child = match &m.content {
                        Some((_, inner)) => {
                            self.add_module(src, file, Some(id), inner, &dir.join(&name))
                        }
                        None => {
                            let flat = dir.join(format!("{name}.rs"));
                            let (child_file, child_dir) = if flat.exists() {
                                (flat, dir.join(&name))
                            } else {
                                (dir.join(&name).join("mod.rs"), dir.join(&name))
                            };
                            let syntax = parse(&child_file);
                            self.add_module(src, &child_file, Some(id), &syntax.items, &child_dir)
                        }
                    };
                    self.modules[id].children.insert(name, child);
                }
                syn::Item::Use(u) => {
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                    for (name, path) in leaves {
                        match name {
                            Some(name) => {
                                self.modules[id].bindings.insert(name, path);
                            }
                            None => self.modules[id].globs.push(path),
                        }
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules[id].items.insert(name);
                    }
                }
            }
        }
        id
    }

    /// What `path`, written in `module`, names in this crate (None: another crate, a
    /// local, a generic).
    fn resolve(&self, module: ModuleId, path: &[String], depth: usize) -> Option<Target> {
        if depth > 32 {
            return None;
        }
        let (first, rest) = path.split_first()?;
        let start = match first.as_str() {
            "crate" | "$crate" => Some(0),
            "self" => Some(module),
            "super" => self.modules[module].parent,
            _ => None,
        };
        if let Some(start) = start {
            let mut at = start;
            let mut rest = rest;
            while let Some((next, tail)) = rest.split_first() {
                if next != "super" {
                    break;
                }
                at = self.modules[at].parent?;
                rest = tail;
            }
            return self.walk(at, rest, depth);
        }
        self.lookup(module, path, depth)
    }

    /// Follows `path` from inside `module`'s scope.
    fn walk(&self, module: ModuleId, path: &[String], depth: usize) -> Option<Target> {
        if path.is_empty() {
            return Some(Target::Module(module));
        }
        self.lookup(module, path, depth)
    }

    fn lookup(&self, module: ModuleId, path: &[String], depth: usize) -> Option<Target> {
        let (first, rest) = path.split_first()?;
        let m = &self.modules[module];
        if let Some(&child) = m.children.get(first) {
            return self.walk(child, rest, depth + 1);
        }
        if m.items.contains(first) {
            return Some(Target::Item(module));
        }
        if let Some(bound) = m.bindings.get(first) {
            let mut full = bound.clone();
            full.extend(rest.iter().cloned());
            return self.resolve(module, &full, depth + 1);
        }
        for glob in &m.globs {
            if let Some(Target::Module(g)) = self.resolve(module, glob, depth + 1) {
                if g != module {
                    if let Some(found) = self.lookup(g, path, depth + 1) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }
}

fn parse(file: &Path) -> syn::File {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|err| panic!("{}: {err}", file.display()))
}

/// The paths one file's code names, each with the module it is written in.
struct Uses<'a> {
    krate: &'a Crate,
    module: ModuleId,
    found: Vec<(ModuleId, Vec<String>)>,
}

impl Uses<'_> {
    fn note(&mut self, path: Vec<String>) {
        if !path.is_empty() {
            self.found.push((self.module, path));
        }
    }

    /// Paths in tokens that do not parse as expressions: `a::b::c` runs of identifiers.
    fn scan(&mut self, tokens: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) if run.is_empty() || colons == 2 => {
                    run.push(ident.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !run.is_empty() && colons < 2 => {
                    colons += 1;
                }
                TokenTree::Punct(p) if p.as_char() == '$' && run.is_empty() => {}
                other => {
                    if run.len() > 1 {
                        self.note(std::mem::take(&mut run));
                    }
                    run.clear();
                    colons = 0;
                    if let TokenTree::Group(group) = other {
                        self.scan(group.stream());
                    } else if let TokenTree::Ident(ident) = other {
                        run.push(ident.to_string());
                    }
                }
            }
        }
        if run.len() > 1 {
            self.note(run);
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_cfg_test(item_attrs(item)) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Const(c) => &c.attrs,
            _ => return syn::visit::visit_impl_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // A module in its own file is that file's; an inline one is a scope of this file.
        let Some((_, items)) = &item.content else {
            return;
        };
        let outer = self.module;
        self.module = self.krate.modules[outer].children[&item.ident.to_string()];
        for item in items {
            self.visit_item(item);
        }
        self.module = outer;
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        // A re-export passes the item on; the code naming it is what depends on it.
        if !matches!(item.vis, syn::Visibility::Inherited) {
            return;
        }
        let mut leaves = Vec::new();
        use_leaves(&item.tree, &mut Vec::new(), &mut leaves);
        for (_, path) in leaves {
            self.note(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            self.note(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        let exprs = mac.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        );
        match exprs {
            Ok(exprs) => exprs.iter().for_each(|e| self.visit_expr(e)),
            Err(_) => self.scan(mac.tokens.clone()),
        }
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &attr.meta {
            self.scan(list.tokens.clone());
        }
    }
}

/// Every file's dependencies: file → (file it uses → the items named).
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> {
    let krate = Crate::load(src);
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    let files: BTreeSet<(PathBuf, ModuleId)> = krate
        .modules
        .iter()
        .enumerate()
        .filter(|(id, m)| {
            // The module of its file, not an inline one.
            m.parent.is_none_or(|p| krate.modules[p].file != m.file) || *id == 0
        })
        .map(|(id, m)| (m.file.clone(), id))
        .collect();
    for (file, module) in files {
        let syntax = parse(&src.parent().unwrap_or(src).join(&file));
        let mut uses = Uses {
            krate: &krate,
            module,
            found: Vec::new(),
        };
        for item in &syntax.items {
            uses.visit_item(item);
        }
        for (module, path) in uses.found {
            if let Some(Target::Item(owner)) = krate.resolve(module, &path, 0) {
                let owner_file = &krate.modules[owner].file;
                if *owner_file != file {
                    edges
                        .entry(file.clone())
                        .or_default()
                        .entry(owner_file.clone())
                        .or_default()
                        .insert(path.join("::"));
                }
            }
        }
    }
    edges
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(
    edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
) -> Vec<BTreeSet<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<BTreeSet<PathBuf>>,
    }
    fn connect<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            connect(&mut state, v);
        }
    }
    state.found
}

fn describe(
    cycle: &BTreeSet<PathBuf>,
    edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
) -> String {
    let mut text = String::new();
    for from in cycle {
        for (to, items) in edges.get(from).into_iter().flatten() {
            if cycle.contains(to) {
                let items: Vec<&str> = items.iter().map(String::as_str).collect();
                text.push_str(&format!(
                    "\n    {} -> {}: {}",
                    from.display(),
                    to.display(),
                    items.join(", ")
                ));
            }
        }
    }
    text
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_file_of_src_depends_on_itself_through_others() {
    let edges = graph(&src());
    let unknown: Vec<String> = cycles(&edges)
        .iter()
        .filter(|cycle| {
            !KNOWN.iter().any(|known| {
                cycle
                    .iter()
                    .all(|f| known.iter().any(|k| Path::new(k) == f.as_path()))
            })
        })
        .map(|cycle| describe(cycle, &edges))
        .collect();
    assert!(
        unknown.is_empty(),
        "cycles between files (each edge: file -> file it uses: items):{}",
        unknown
            .iter()
            .map(|c| format!("\n  cycle:{c}"))
            .collect::<String>()
    );
}

/// The checker sees what the compiler sees: a sample crate with a cycle through a
/// re-export, a macro argument and a grouped `use`, and none through a comment.
#[test]
fn the_checker_finds_cycles_through_reexports_macros_and_groups_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(src.join(path), text).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write(
        "a/mod.rs",
        "mod inner;\npub use inner::*;\npub fn helper() {}\n",
    );
    write(
        "a/inner.rs",
        "pub struct Thing;\n// crate::c::gamma() in a comment is no use\nfn f() -> &'static str { \"crate::c::gamma\" }\n",
    );
    write(
        "b.rs",
        "use crate::{a::Thing, c};\npub fn beta() { let _ = Thing; c::gamma(); }\n",
    );
    write(
        "c.rs",
        "pub fn gamma() { println!(\"{}\", format!(\"{:?}\", super::b::beta())); }\n#[cfg(test)]\nmod tests { use crate::a::helper; }\n",
    );
    let edges = graph(&src);
    let found = cycles(&edges);
    let names = |set: &BTreeSet<PathBuf>| -> Vec<String> {
        set.iter().map(|p| p.display().to_string()).collect()
    };
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(names(&found[0]), ["src/b.rs", "src/c.rs"]);
    assert!(
        edges[Path::new("src/b.rs")][Path::new("src/a/inner.rs")].contains("crate::a::Thing"),
        "{edges:?}"
    );
    assert!(!edges.contains_key(Path::new("src/a/inner.rs")));
    assert!(
        !edges[Path::new("src/c.rs")].contains_key(Path::new("src/a/mod.rs")),
        "a test module's use counted"
    );
}
