//! Makes a stream loadable by a target: applies the `--hash-field-ttl`, `--vector-set` and
//! `--module` policies to what the target cannot store, refuses functions for a target
//! without them, and counts every decision in a [`PolicyReport`].

mod export;
mod hash_ttl;
mod modules;
mod report;
#[cfg(test)]
mod tests;

pub use export::{ExportedKeys, VectorExporter};
pub use report::{HashFieldTtlCounts, ModuleCounts, PolicyReport, VectorSetCounts};

use super::Transform;
use crate::display::count;
use crate::error::Error;
use crate::policy::{Policies, VectorSetPolicy};
use crate::target::Target;
use ferry_codec::{Flavor, FormatError, Item, KeyHeader, Kind, ValuePart};
use hash_ttl::HashTtlFilter;
use modules::Action;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "key {key}: field {field} has a TTL and {target} has no hash field TTLs; pass \
         --hash-field-ttl persist (keep the field, without TTL) or drop-field (leave it out)"
    )]
    HashFieldTtl {
        key: String,
        field: String,
        target: String,
    },
    #[error("key {key}: a field TTL in a hash encoding that cannot carry one")]
    UnexpectedFieldTtl { key: String },
    #[error(
        "key {key} is a vector set and {target} has no vector sets; pass --vector-set skip \
         or --vector-set export=PATH"
    )]
    VectorSet { key: String, target: String },
    #[error(
        "key {key} has module type '{module}', which {target} cannot load; pass --module skip \
         to leave such keys out"
    )]
    Module {
        key: String,
        module: String,
        target: String,
    },
    #[error(
        "the source holds global data (module AUX) of module '{module}', which {target} \
         cannot load; pass {flag} to drop it"
    )]
    ModuleAux {
        module: String,
        target: String,
        flag: &'static str,
    },
    #[error("target {target} has no functions; the source has {libraries}")]
    Functions { target: String, libraries: String },
    #[error("key {key}: cannot read the vector set")]
    VectorSetBody {
        key: String,
        #[source]
        source: FormatError,
    },
}

/// Where the current item is, relative to the key it belongs to.
enum KeyState {
    /// Not inside a key.
    Between,
    /// Inside a key the target takes as it is.
    Pass,
    /// Inside a key being left out; already counted.
    Drop,
    Hash(HashTtlFilter),
    /// Inside a vector set being exported: its module body, collected for the parser.
    Export {
        db: u64,
        key: bytes::Bytes,
        body: Vec<u8>,
    },
}

pub struct CompatTransform {
    target: Target,
    policies: Policies,
    /// Decides what the ambiguous hash type bytes mean; set by the stream's header.
    source_flavor: Flavor,
    state: KeyState,
    /// Function libraries seen for a target without functions; reported together.
    refused_functions: u64,
    exporter: Option<VectorExporter>,
    /// Where the exported keys are noted, for a run that keeps the export current.
    exported_keys: Option<ExportedKeys>,
    report: PolicyReport,
}

impl CompatTransform {
    /// `force` allows the vector-set export file to replace an existing one. Fails at once
    /// if that file exists without it.
    pub fn new(target: Target, policies: Policies, force: bool) -> Result<Self, Error> {
        let exporter = match &policies.vector_set {
            VectorSetPolicy::Export(path) if !target.format.has_builtin_module("vectorset") => {
                Some(VectorExporter::new(path, force)?)
            }
            _ => None,
        };
        Ok(Self {
            report: PolicyReport::new(&policies),
            target,
            policies,
            source_flavor: Flavor::Redis,
            state: KeyState::Between,
            refused_functions: 0,
            exporter,
            exported_keys: None,
        })
    }

    /// Notes each exported vector set in `keys`.
    pub fn with_exported_keys(mut self, keys: ExportedKeys) -> Self {
        self.exported_keys = Some(keys);
        self
    }

    pub fn report(&self) -> &PolicyReport {
        &self.report
    }

    /// After a successful run: puts the export file in place and gives the report.
    pub fn complete(self) -> Result<PolicyReport, Error> {
        if let Some(exporter) = self.exporter {
            exporter.commit()?;
        }
        Ok(self.report)
    }

    fn refuse_functions(&self) -> Result<(), Error> {
        if self.refused_functions == 0 {
            return Ok(());
        }
        Err(PolicyError::Functions {
            target: self.target.name.clone(),
            libraries: count(
                self.refused_functions,
                "function library",
                "function libraries",
            ),
        }
        .into())
    }

    fn start_key(&mut self, header: KeyHeader, out: &mut Vec<Item>) -> Result<(), Error> {
        self.state = match header.kind {
            Kind::Hash if !self.target.format.has_hash_field_ttl() => {
                KeyState::Hash(HashTtlFilter::start(
                    self.policies.hash_field_ttl,
                    header,
                    self.source_flavor,
                    out,
                ))
            }
            Kind::Module(module) => {
                match modules::for_key(module, &header.key, &self.target, &self.policies)? {
                    Action::Keep => {
                        out.push(Item::KeyStart(header));
                        KeyState::Pass
                    }
                    Action::Skip => {
                        if module.is_vector_set() {
                            self.report.vector_sets.keys_skipped += 1;
                        } else {
                            self.report.module(module.name()).keys_skipped += 1;
                        }
                        KeyState::Drop
                    }
                    Action::Export => {
                        if let Some(keys) = &self.exported_keys {
                            keys.note(header.db, &header.key);
                        }
                        KeyState::Export {
                            db: header.db,
                            key: header.key,
                            body: Vec::new(),
                        }
                    }
                }
            }
            _ => {
                out.push(Item::KeyStart(header));
                KeyState::Pass
            }
        };
        Ok(())
    }

    fn part(&mut self, part: ValuePart, out: &mut Vec<Item>) -> Result<(), Error> {
        match (&mut self.state, part) {
            (KeyState::Hash(filter), ValuePart::HashFields(fields)) => {
                filter.fields(fields, &self.target.name, out)?
            }
            (KeyState::Export { body, .. }, ValuePart::Module(bytes)) => {
                body.extend_from_slice(&bytes)
            }
            (KeyState::Drop | KeyState::Export { .. }, _) => {}
            (_, part) => out.push(Item::Part(part)),
        }
        Ok(())
    }

    fn end_key(&mut self, out: &mut Vec<Item>) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, KeyState::Between) {
            KeyState::Hash(filter) => filter.end(&mut self.report.hash_field_ttl, out),
            KeyState::Export { db, key, body } => {
                let exporter = self.exporter.as_mut();
                let elements = match exporter {
                    Some(exporter) => exporter.export(db, &key, &body)?,
                    None => 0,
                };
                self.report.vector_sets.keys_exported += 1;
                self.report.vector_sets.elements_exported += elements;
            }
            KeyState::Drop => {}
            KeyState::Pass | KeyState::Between => out.push(Item::KeyEnd),
        }
        Ok(())
    }

    fn module_aux(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
        let Item::ModuleAux { module, .. } = &item else {
            out.push(item);
            return Ok(());
        };
        match modules::for_aux(*module, &self.target, &self.policies)? {
            Action::Keep => out.push(item),
            Action::Skip | Action::Export if module.is_vector_set() => {
                self.report.vector_sets.aux_dropped += 1
            }
            Action::Skip | Action::Export => self.report.module(module.name()).aux_dropped += 1,
        }
        Ok(())
    }
}

impl Transform for CompatTransform {
    fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
        if let Item::Function { .. } = item {
            if !self.target.format.has_functions() {
                // Count them all first so the error says how many there are.
                self.refused_functions += 1;
                return Ok(());
            }
        } else {
            self.refuse_functions()?;
        }
        match item {
            Item::Header(version) => {
                self.source_flavor = version.flavor;
                out.push(item);
            }
            Item::ModuleAux { .. } => self.module_aux(item, out)?,
            Item::KeyStart(header) => self.start_key(header, out)?,
            Item::Part(part) => self.part(part, out)?,
            Item::KeyEnd => self.end_key(out)?,
            other => out.push(other),
        }
        Ok(())
    }

    fn passes_unchanged(&mut self, item: &Item) -> Result<bool, Error> {
        // Exactly the cases `apply` passes on unchanged inside and around a plain key.
        let passes = match (item, &self.state) {
            (Item::KeyStart(header), KeyState::Between) => match header.kind {
                Kind::Hash => self.target.format.has_hash_field_ttl(),
                Kind::Module(_) => false,
                _ => true,
            },
            (Item::Part(_) | Item::KeyEnd, KeyState::Pass) => true,
            _ => false,
        };
        if !passes {
            return Ok(false);
        }
        self.refuse_functions()?;
        self.state = match item {
            Item::KeyEnd => KeyState::Between,
            _ => KeyState::Pass,
        };
        Ok(true)
    }

    fn passes_whole_key(&mut self, header: &KeyHeader) -> Result<bool, Error> {
        // A string key: nothing in it depends on the target.
        if !matches!(self.state, KeyState::Between) || header.kind != Kind::String {
            return Ok(false);
        }
        self.refuse_functions()?;
        Ok(true)
    }

    fn finish(&mut self, _out: &mut Vec<Item>) -> Result<(), Error> {
        self.refuse_functions()
    }
}
