//! Redis 8 vector sets (module type `vectorset`, encoding version 0): reading the module
//! value body that the decoder yields as [`crate::ValuePart::Module`].
//!
//! Layout, from Redis's `modules/vector-sets/vset.c` (`VectorSetRdbSave`) and `hnsw.c`
//! (`hnsw_serialize_node`), every item a typed module value:
//! - unsigned dim, unsigned element count,
//! - unsigned config: quantization in bits 0–7 (0 fp32, 1 int8, 2 binary), HNSW M in bits
//!   8–23 (0 in files older than the setting: M was 16),
//! - unsigned flags: bit 0 projection matrix present, bit 1 attributes present,
//! - if bit 0: unsigned input dim, string of input dim × dim little-endian f32,
//! - per element: string name, [string JSON attributes, empty for none, if bit 1],
//!   string vector (dim × 4 bytes fp32, dim bytes int8, ⌈dim/64⌉ × 8 bytes binary),
//!   unsigned n, n unsigned graph parameters. The last parameter packs the vector's
//!   quantization range (high 32 bits) and L2 norm (low 32 bits) as f32 bit patterns; the
//!   others (node id, level, links) describe the graph, which the server rebuilds.
//! - the end marker.
//!
//! Vectors are stored normalized; [`VectorElement::vector`] is de-normalized and
//! de-quantized the way `VEMB` computes it (`hnsw_get_node_vector`).

use bytes::Bytes;

use crate::decode::module::{read_value, ModuleValue};
use crate::decode::reader::Reader;
use crate::error::{DecodeError, FormatError};

const STRUCTURE: &str = "vector set";
const FLAG_PROJECTION: u64 = 1;
const FLAG_ATTRIBUTES: u64 = 2;
const DEFAULT_HNSW_M: u32 = 16;
/// Cap on preallocation for counts read from the input.
const PREALLOC: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// `NOQUANT`: 32-bit floats.
    Fp32,
    /// `Q8`: one signed byte per dimension plus a per-vector range (the default).
    Int8,
    /// `BIN`: one bit per dimension.
    Binary,
}

impl Quantization {
    fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Fp32),
            1 => Some(Self::Int8),
            2 => Some(Self::Binary),
            _ => None,
        }
    }

    /// Stored bytes of one vector of `dim` dimensions.
    pub fn vector_bytes(&self, dim: u32) -> usize {
        let dim = dim as usize;
        match self {
            Self::Fp32 => dim * 4,
            Self::Int8 => dim,
            Self::Binary => dim.div_ceil(64) * 8,
        }
    }
}

/// A random projection that reduces input vectors (`VADD ... REDUCE`).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub input_dim: u32,
    /// `dim` rows of `input_dim` values.
    pub matrix: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSet {
    /// Dimensions of the stored vectors (after any projection).
    pub dim: u32,
    pub quantization: Quantization,
    pub hnsw_m: u32,
    pub projection: Option<Projection>,
    pub elements: Vec<VectorElement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorElement {
    pub name: Bytes,
    /// De-quantized and de-normalized, as `VEMB` returns it.
    pub vector: Vec<f32>,
    /// JSON attributes (`VSETATTR`), if any.
    pub attributes: Option<Bytes>,
}

/// Parses a vector set's module body (everything after the module id, end marker included).
pub fn parse(module_body: &[u8]) -> Result<VectorSet, FormatError> {
    let mut body = Body {
        reader: Reader::new(module_body),
    };
    body.reader.disable_checksum();
    let dim = body.u32("dimension")?;
    if dim == 0 {
        return Err(body.error("dimension is 0"));
    }
    let count = body.unsigned("element count")?;
    let config = body.unsigned("configuration")?;
    let quantization = Quantization::from_code(config & 0xff)
        .ok_or_else(|| body.error(format!("unknown quantization {}", config & 0xff)))?;
    let hnsw_m = match ((config >> 8) & 0xffff) as u32 {
        0 => DEFAULT_HNSW_M,
        m => m,
    };
    let flags = body.unsigned("flags")?;
    let projection = if flags & FLAG_PROJECTION != 0 {
        let input_dim = body.u32("projection input dimension")?;
        let matrix = body.string("projection matrix")?;
        let expected = 4 * u64::from(input_dim) * u64::from(dim);
        if matrix.len() as u64 != expected {
            return Err(body.error(format!(
                "projection matrix is {} bytes, expected {expected}",
                matrix.len()
            )));
        }
        Some(Projection {
            input_dim,
            matrix: floats(&matrix),
        })
    } else {
        None
    };
    let vector_bytes = quantization.vector_bytes(dim);
    let mut elements = Vec::with_capacity(count.min(PREALLOC) as usize);
    for _ in 0..count {
        let name = body.string("element name")?;
        let attributes = if flags & FLAG_ATTRIBUTES != 0 {
            Some(body.string("element attributes")?).filter(|a| !a.is_empty())
        } else {
            None
        };
        let stored = body.string("element vector")?;
        if stored.len() != vector_bytes {
            return Err(body.error(format!(
                "vector of {:?} is {} bytes, expected {vector_bytes}",
                name.escape_ascii().to_string(),
                stored.len()
            )));
        }
        let params = body.unsigned("graph parameter count")?;
        if params == 0 {
            return Err(body.error("element without graph parameters"));
        }
        let mut last = 0;
        for _ in 0..params {
            last = body.unsigned("graph parameter")?;
        }
        let l2 = f32::from_bits(last as u32);
        let range = f32::from_bits((last >> 32) as u32);
        let vector = dequantize(quantization, dim, &stored, l2, range);
        elements.push(VectorElement {
            name,
            vector,
            attributes,
        });
    }
    match body.value("end marker")? {
        ModuleValue::Eof => {}
        other => return Err(body.error(format!("expected the end marker, found {other:?}"))),
    }
    if !body.reader.at_eof().map_err(|e| body.wrap(e))? {
        return Err(body.error("bytes after the end marker"));
    }
    Ok(VectorSet {
        dim,
        quantization,
        hnsw_m,
        projection,
        elements,
    })
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The server's arithmetic, in the same order and precision, so results match `VEMB`.
fn dequantize(
    quantization: Quantization,
    dim: u32,
    stored: &[u8],
    l2: f32,
    range: f32,
) -> Vec<f32> {
    match quantization {
        Quantization::Fp32 => floats(stored).into_iter().map(|v| v * l2).collect(),
        Quantization::Int8 => stored
            .iter()
            .map(|&q| (f32::from(q as i8) * range) / 127.0 * l2)
            .collect(),
        Quantization::Binary => (0..dim as usize)
            .map(|j| {
                let byte = stored.get(j / 8).copied().unwrap_or(0);
                if byte & (1 << (j % 8)) != 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect(),
    }
}

struct Body<'a> {
    reader: Reader<&'a [u8]>,
}

impl Body<'_> {
    fn wrap(&self, err: DecodeError) -> FormatError {
        let at = err.offset().unwrap_or(self.reader.offset()) as usize;
        let problem = match err {
            DecodeError::Structure { source, .. } => source.to_string(),
            DecodeError::Truncated { context, .. } => format!("ends early while reading {context}"),
            DecodeError::Invalid { problem, .. } => problem,
            other => other.to_string(),
        };
        FormatError::new(STRUCTURE, at, problem)
    }

    fn error(&self, problem: impl Into<String>) -> FormatError {
        FormatError::new(STRUCTURE, self.reader.offset() as usize, problem)
    }

    fn value(&mut self, what: &str) -> Result<ModuleValue, FormatError> {
        read_value(&mut self.reader).map_err(|e| {
            let mut err = self.wrap(e);
            err.problem = format!("{} (reading the {what})", err.problem);
            err
        })
    }

    fn unsigned(&mut self, what: &str) -> Result<u64, FormatError> {
        match self.value(what)? {
            ModuleValue::Unsigned(v) => Ok(v),
            other => Err(self.error(format!("expected an unsigned {what}, found {other:?}"))),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let value = self.unsigned(what)?;
        u32::try_from(value).map_err(|_| self.error(format!("{what} {value} is too large")))
    }

    fn string(&mut self, what: &str) -> Result<Bytes, FormatError> {
        match self.value(what)? {
            ModuleValue::String(s) => Ok(s),
            other => Err(self.error(format!("expected a string {what}, found {other:?}"))),
        }
    }
}
