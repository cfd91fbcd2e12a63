//! The plan file (`ferry fleet run PLAN.toml`): top-level settings, `[defaults]` and one
//! `[[pair]]` per source → target. Everything is checked before anything starts; each
//! problem is one line naming the pair.

use crate::policy::{HashFieldTtlPolicy, ModulePolicy, Policies, VectorSetPolicy};
use crate::url::ServerUrl;
use ferry_repl::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Pairs migrating at once unless the plan or `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// A plan that cannot run, one line.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Plan { path: PathBuf, message: String },
    #[error("{}: pair {pair}: {message}", path.display())]
    Pair {
        path: PathBuf,
        pair: String,
        message: String,
    },
}

/// The file's top level, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    state_dir: PathBuf,
    concurrency: Option<u32>,
    defaults: Option<toml::Value>,
    #[serde(default)]
    pair: Vec<toml::Value>,
}

/// What `[defaults]` may set and each `[[pair]]` may override (besides its name, source
/// and target).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    wave: Option<u32>,
    source_password_env: Option<String>,
    source_password_file: Option<PathBuf>,
    target_password_env: Option<String>,
    target_password_file: Option<PathBuf>,
    hash_field_ttl: Option<String>,
    vector_set: Option<String>,
    module: Option<String>,
    exec: Option<String>,
    exec_undo: Option<String>,
    switch: Option<bool>,
}

impl Settings {
    /// `self` over `defaults`, field by field. A pair's password source replaces both of
    /// the defaults' (env and file), so that the two never combine.
    fn over(self, defaults: &Settings) -> Settings {
        let (source_password_env, source_password_file) =
            match (&self.source_password_env, &self.source_password_file) {
                (None, None) => (
                    defaults.source_password_env.clone(),
                    defaults.source_password_file.clone(),
                ),
                _ => (self.source_password_env, self.source_password_file),
            };
        let (target_password_env, target_password_file) =
            match (&self.target_password_env, &self.target_password_file) {
                (None, None) => (
                    defaults.target_password_env.clone(),
                    defaults.target_password_file.clone(),
                ),
                _ => (self.target_password_env, self.target_password_file),
            };
        Settings {
            wave: self.wave.or(defaults.wave),
            source_password_env,
            source_password_file,
            target_password_env,
            target_password_file,
            hash_field_ttl: self.hash_field_ttl.or(defaults.hash_field_ttl.clone()),
            vector_set: self.vector_set.or(defaults.vector_set.clone()),
            module: self.module.or(defaults.module.clone()),
            exec: self.exec.or(defaults.exec.clone()),
            exec_undo: self.exec_undo.or(defaults.exec_undo.clone()),
            switch: self.switch.or(defaults.switch),
        }
    }
}

/// Where a side's password comes from: handed to the migration as the same flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    Env(String),
    File(PathBuf),
}

/// One pair, checked: its URLs hold the passwords (never printed).
#[derive(Debug, Clone)]
pub struct PairPlan {
    pub name: String,
    pub wave: u32,
    pub source: ServerUrl,
    pub target: ServerUrl,
    pub source_password: Option<PasswordFrom>,
    pub target_password: Option<PasswordFrom>,
    pub policies: Policies,
    pub exec: Option<String>,
    pub exec_undo: Option<String>,
    /// Cut clients over once in sync (the default). Without: verify while the migration
    /// streams, then stop it, clients left on the source (a source that cannot pause
    /// writes, Redis before 6.2, cannot be cut over by ferry).
    pub switch: bool,
}

impl PairPlan {
    /// The policy flags for `ferry migrate`, as its command line takes them.
    pub fn policy_flags(&self) -> Vec<String> {
        vec![
            "--hash-field-ttl".into(),
            self.policies.hash_field_ttl.to_string(),
            "--vector-set".into(),
            self.policies.vector_set.to_string(),
            "--module".into(),
            self.policies.module.to_string(),
        ]
    }
}

/// The whole plan, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    /// `state_dir/<pair>/` per pair and `state_dir/fleet.json`.
    pub state_dir: PathBuf,
    pub concurrency: u32,
    /// In the file's order.
    pub pairs: Vec<PairPlan>,
}

impl Plan {
    /// The waves in ascending order, each with its pairs in the file's order.
    pub fn waves(&self) -> BTreeMap<u32, Vec<&PairPlan>> {
        let mut waves: BTreeMap<u32, Vec<&PairPlan>> = BTreeMap::new();
        for pair in &self.pairs {
            waves.entry(pair.wave).or_default().push(pair);
        }
        waves
    }
}

/// Reads and checks the plan at `path`; relative paths in it are the plan's folder's.
/// `env` reads the password variables (the process's environment outside tests).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, env)
}

/// [`load`] on the file's text.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, PlanError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let syntax = |error: toml::de::Error| PlanError::Syntax {
        path: path.to_owned(),
        message: toml_line(text, &error),
    };
    let file: PlanFile = toml::from_str(text).map_err(syntax)?;
    let plan_error = |message: String| PlanError::Plan {
        path: path.to_owned(),
        message,
    };
    let defaults: Settings = match file.defaults {
        Some(value) => value
            .try_into()
            .map_err(|e: toml::de::Error| plan_error(format!("[defaults]: {}", e.message())))?,
        None => Settings::default(),
    };
    if file.pair.is_empty() {
        return Err(plan_error("no [[pair]]: nothing to migrate".into()));
    }
    let concurrency = file.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(plan_error("concurrency must be at least 1".into()));
    }
    let mut pairs: Vec<PairPlan> = Vec::with_capacity(file.pair.len());
    for (index, value) in file.pair.into_iter().enumerate() {
        let pair = check_pair(index, value, &defaults, base, env).map_err(|(pair, message)| {
            PlanError::Pair {
                path: path.to_owned(),
                pair,
                message,
            }
        })?;
        pairs.push(pair);
    }
    check_together(&pairs).map_err(|(pair, message)| PlanError::Pair {
        path: path.to_owned(),
        pair,
        message,
    })?;
    Ok(Plan {
        path: path.to_owned(),
        state_dir: base.join(file.state_dir),
        concurrency,
        pairs,
    })
}

/// A TOML error on one line: its message and the line it is on.
fn toml_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// One `[[pair]]` (the `index`-th) checked on its own: `Err((how to name it, why))`.
fn check_pair(
    index: usize,
    value: toml::Value,
    defaults: &Settings,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PairPlan, (String, String)> {
    let number = format!("#{}", index + 1);
    let toml::Value::Table(mut table) = value else {
        return Err((number, "not a table".into()));
    };
    let mut take = |key: &str, who: &str| -> Result<String, (String, String)> {
        match table.remove(key) {
            Some(toml::Value::String(text)) if !text.is_empty() => Ok(text),
            Some(_) => Err((
                who.to_owned(),
                format!("`{key}` must be a non-empty string"),
            )),
            None => Err((who.to_owned(), format!("`{key}` is missing"))),
        }
    };
    let name = take("name", &number)?;
    let fail = |message: String| (name.clone(), message);
    if !valid_name(&name) {
        return Err((
            number,
            format!(
                "name {name:?}: use letters, digits, '.', '_' and '-' only (it names a folder)"
            ),
        ));
    }
    let source = take("source", &name)?;
    let target = take("target", &name)?;
    let own: Settings = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| fail(e.message().replace('\n', " ")))?;
    let settings = own.over(defaults);
    let policies = Policies {
        hash_field_ttl: policy::<HashFieldTtlPolicy>(&settings.hash_field_ttl, "hash_field_ttl")
            .map_err(fail)?,
        vector_set: policy::<VectorSetPolicy>(&settings.vector_set, "vector_set").map_err(fail)?,
        module: policy::<ModulePolicy>(&settings.module, "module").map_err(fail)?,
    };
    let source_password = password_from(
        "source",
        &settings.source_password_env,
        &settings.source_password_file,
        base,
    )
    .map_err(fail)?;
    let target_password = password_from(
        "target",
        &settings.target_password_env,
        &settings.target_password_file,
        base,
    )
    .map_err(fail)?;
    let source = server_url("source", &source, source_password.as_ref(), env).map_err(fail)?;
    let target = server_url("target", &target, target_password.as_ref(), env).map_err(fail)?;
    let wave = settings.wave.unwrap_or(1);
    if settings.switch == Some(false) && settings.exec.is_some() {
        return Err(fail(
            "`exec` runs at the cutover, and `switch = false` makes none".into(),
        ));
    }
    Ok(PairPlan {
        name,
        wave,
        source,
        target,
        source_password,
        target_password,
        policies,
        exec: settings.exec,
        exec_undo: settings.exec_undo,
        switch: settings.switch.unwrap_or(true),
    })
}

/// Names become folders and appear in reports: no separators, no `..`.
fn valid_name(name: &str) -> bool {
    name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn policy<T>(value: &Option<String>, key: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = crate::policy::ParsePolicyError> + Default,
{
    match value {
        None => Ok(T::default()),
        Some(text) => text.parse().map_err(|e| format!("{key} {text:?}: {e}")),
    }
}

fn password_from(
    side: &str,
    env: &Option<String>,
    file: &Option<PathBuf>,
    base: &Path,
) -> Result<Option<PasswordFrom>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!(
            "give {side}_password_env or {side}_password_file, not both"
        )),
        (Some(var), None) => Ok(Some(PasswordFrom::Env(var.clone()))),
        (None, Some(path)) => Ok(Some(PasswordFrom::File(base.join(path)))),
        (None, None) => Ok(None),
    }
}

/// The side's URL with its password read: a password in the URL itself is refused (the
/// plan file is not a secret store). The messages never quote a password.
fn server_url(
    side: &str,
    text: &str,
    password: Option<&PasswordFrom>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerUrl, String> {
    let mut url = ServerUrl::parse(text).map_err(|e| format!("{side}: {e}"))?;
    if url.password.is_some() {
        return Err(format!(
            "{side}: put the password in {side}_password_env or {side}_password_file, not in the URL"
        ));
    }
    if url.sentinel.is_some() {
        return Err(format!(
            "{side}: Sentinel URLs are not supported in a fleet plan; name the primary"
        ));
    }
    if url.db.is_some_and(|db| db != 0) {
        return Err(format!(
            "{side}: a migration copies every database; leave the /db part out of the URL"
        ));
    }
    url.password = match password {
        None => None,
        Some(PasswordFrom::Env(var)) => match env(var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            Some(_) => return Err(format!("{side}_password_env {var}: the variable is empty")),
            None => {
                return Err(format!(
                    "{side}_password_env {var}: the variable is not set"
                ))
            }
        },
        Some(PasswordFrom::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "{side}_password_file {}: cannot read it: {e}",
                    path.display()
                )
            })?;
            let line = crate::connection::password_line(&text)
                .map_err(|why| format!("{side}_password_file {}: {why}", path.display()))?;
            Some(Secret::new(line))
        }
    };
    Ok(url)
}

/// What no two pairs may share: a name, a target; and no pair may write into a server
/// another pair reads (nor into its own source).
fn check_together(pairs: &[PairPlan]) -> Result<(), (String, String)> {
    let mut names: BTreeMap<&str, ()> = BTreeMap::new();
    let mut targets: BTreeMap<String, &str> = BTreeMap::new();
    for pair in pairs {
        if names.insert(&pair.name, ()).is_some() {
            return Err((
                pair.name.clone(),
                "the name is used by an earlier pair".into(),
            ));
        }
        if let Some(other) = targets.insert(pair.target.address(), &pair.name) {
            return Err((
                pair.name.clone(),
                format!(
                    "target {} is also pair {other}'s target",
                    pair.target.address()
                ),
            ));
        }
    }
    for pair in pairs {
        if let Some(other) = targets.get(&pair.source.address()) {
            let message = if *other == pair.name {
                format!(
                    "source and target are the same server, {}",
                    pair.source.address()
                )
            } else {
                format!("source {} is pair {other}'s target", pair.source.address())
            };
            return Err((pair.name.clone(), message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "PASS").then(|| "s3cret-value".to_owned())
    }

    fn plan(text: &str) -> Result<Plan, String> {
        parse(Path::new("/plans/fleet.toml"), text, &env).map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
state_dir = "state"
concurrency = 2
[defaults]
target_password_env = "PASS"
module = "skip"
[[pair]]
name = "a"
source = "redis://10.0.0.1:6379"
target = "redis://10.0.1.1:6379"
[[pair]]
name = "b"
source = "redis://10.0.0.2:6379"
target = "redis://10.0.1.2:6379"
wave = 2
hash_field_ttl = "persist"
"#;

    #[test]
    fn a_plan_with_defaults_and_waves() {
        let plan = plan(TWO).unwrap();
        assert_eq!(plan.state_dir, Path::new("/plans/state"));
        assert_eq!(plan.concurrency, 2);
        let waves = plan.waves();
        assert_eq!(waves.keys().copied().collect::<Vec<_>>(), [1, 2]);
        let b = &plan.pairs[1];
        assert_eq!(b.policies.hash_field_ttl, HashFieldTtlPolicy::Persist);
        assert_eq!(b.policies.module, ModulePolicy::Skip);
        assert_eq!(b.target.password.as_ref().unwrap().expose(), "s3cret-value");
        assert_eq!(b.target_password, Some(PasswordFrom::Env("PASS".into())));
        assert!(!format!("{:?}", plan.pairs).contains("s3cret"));
    }

    #[test]
    fn each_problem_is_one_line_naming_the_pair() {
        let cases = [
            (
                TWO.replace("name = \"b\"", "name = \"a\""),
                "pair a: the name is used",
            ),
            (
                TWO.replace("10.0.0.2:6379", "10.0.1.1:6379"),
                "pair b: source 10.0.1.1:6379 is pair a's target",
            ),
            (
                TWO.replace("wave = 2", "wave = 2\nsourse = 1"),
                "pair b: unknown field `sourse`",
            ),
            (
                TWO.replace("\"PASS\"", "\"NOT_SET\""),
                "pair a: target_password_env NOT_SET: the variable is not set",
            ),
            (
                TWO.replace("\"persist\"", "\"keep\""),
                "pair b: hash_field_ttl \"keep\": expected",
            ),
            (
                TWO.replace("concurrency = 2", "concurrency = 2\nconcurrent = 1"),
                "unknown field `concurrent`",
            ),
            (
                TWO.replace("redis://10.0.0.1:6379", "redis://:pw@10.0.0.1:6379"),
                "pair a: source: put the password in",
            ),
            (
                TWO.replace("name = \"b\"", "name = \"../b\""),
                "pair #2: name",
            ),
            (
                TWO.replace("name = \"b\"\n", ""),
                "pair #2: `name` is missing",
            ),
            (TWO.replace("[[pair]]", "[[pair"), "line "),
        ];
        for (text, expected) in cases {
            let error = plan(&text).unwrap_err();
            assert!(error.contains(expected), "{error} (wanted {expected})");
            assert!(!error.contains('\n'), "{error}");
            assert!(!error.contains("pw") || !error.contains(":pw@"), "{error}");
        }
    }
}
