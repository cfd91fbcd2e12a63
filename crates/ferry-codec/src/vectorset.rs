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

/// How a vector set stores its vectors (`VADD ... NOQUANT | Q8 | BIN`).
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
    /// Dimensions of the vectors given to `VADD`, before the projection.
    pub input_dim: u32,
    /// `dim` rows of `input_dim` values.
    pub matrix: Vec<f32>,
}

/// A vector set's content; its HNSW graph is left out (a server rebuilds it on load).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSet {
    /// Dimensions of the stored vectors (after any projection).
    pub dim: u32,
    /// How the vectors are stored.
    pub quantization: Quantization,
    /// The HNSW `M` parameter (links per node), 16 in files that predate the setting.
    pub hnsw_m: u32,
    /// The projection given with `REDUCE`, if any.
    pub projection: Option<Projection>,
    /// The elements, in stored order.
    pub elements: Vec<VectorElement>,
}

/// One element of a vector set.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorElement {
    /// The element's name.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::length::{write_len, write_string};
    use crate::types::{MODULE_OP_EOF, MODULE_OP_STRING, MODULE_OP_UINT};

    /// Writes a body the way `VectorSetRdbSave` does.
    #[derive(Default)]
    struct Body(Vec<u8>);

    impl Body {
        fn unsigned(&mut self, v: u64) -> &mut Self {
            write_len(&mut self.0, MODULE_OP_UINT);
            write_len(&mut self.0, v);
            self
        }
        fn string(&mut self, s: &[u8]) -> &mut Self {
            write_len(&mut self.0, MODULE_OP_STRING);
            write_string(&mut self.0, s, true);
            self
        }
        /// Graph parameters as `hnsw_serialize_node` lays them out for a level-0 node with
        /// one link, ending with the packed range and L2 norm.
        fn node_params(&mut self, id: u64, l2: f32, range: f32) -> &mut Self {
            let packed = (u64::from(range.to_bits()) << 32) | u64::from(l2.to_bits());
            self.unsigned(7)
                .unsigned(id)
                .unsigned(1 << 24)
                .unsigned(1)
                .unsigned(32)
                .unsigned(id + 1);
            self.unsigned(0).unsigned(packed)
        }
        fn end(&mut self) -> Vec<u8> {
            write_len(&mut self.0, MODULE_OP_EOF);
            std::mem::take(&mut self.0)
        }
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn fp32_vectors_are_denormalized() {
        let mut body = Body::default();
        body.unsigned(2).unsigned(2).unsigned(0).unsigned(0);
        body.string(b"a")
            .string(&f32_bytes(&[0.6, 0.8]))
            .node_params(1, 5.0, 0.0);
        body.string(b"b")
            .string(&f32_bytes(&[1.0, 0.0]))
            .node_params(2, 2.0, 0.0);
        let set = parse(&body.end()).unwrap();
        assert_eq!(
            (set.dim, set.quantization, set.hnsw_m),
            (2, Quantization::Fp32, 16)
        );
        assert_eq!(set.elements[0].vector, vec![0.6 * 5.0, 0.8 * 5.0]);
        assert_eq!(set.elements[1].vector, vec![2.0, 0.0]);
        assert_eq!(set.elements[1].name, "b");
        assert!(set.projection.is_none() && set.elements.iter().all(|e| e.attributes.is_none()));
    }

    #[test]
    fn int8_vectors_with_attributes_projection_and_m() {
        let mut body = Body::default();
        let config = 1 | (32 << 8);
        body.unsigned(2)
            .unsigned(2)
            .unsigned(config)
            .unsigned(FLAG_PROJECTION | FLAG_ATTRIBUTES);
        let matrix = [0.5f32, -0.5, 1.0, 2.0, 3.0, 4.0];
        body.unsigned(3).string(&f32_bytes(&matrix));
        body.string(b"x")
            .string(br#"{"year":1999}"#)
            .string(&[127u8, (-64i8) as u8]);
        body.node_params(1, 2.0, 0.5);
        body.string(b"y")
            .string(b"")
            .string(&[0, 1])
            .node_params(2, 1.0, 1.0);
        let set = parse(&body.end()).unwrap();
        assert_eq!((set.quantization, set.hnsw_m), (Quantization::Int8, 32));
        assert_eq!(
            set.projection,
            Some(Projection {
                input_dim: 3,
                matrix: matrix.to_vec()
            })
        );
        let x = &set.elements[0];
        assert_eq!(x.attributes.as_deref(), Some(&br#"{"year":1999}"#[..]));
        assert_eq!(
            x.vector,
            vec![
                (127.0f32 * 0.5) / 127.0 * 2.0,
                (-64.0f32 * 0.5) / 127.0 * 2.0
            ]
        );
        assert_eq!(set.elements[1].attributes, None);
    }

    #[test]
    fn binary_vectors_are_signs() {
        let mut body = Body::default();
        body.unsigned(70).unsigned(1).unsigned(2).unsigned(0);
        let mut bits = [0u8; 16];
        bits[0] = 0b0000_0101; // dimensions 0 and 2
        bits[8] = 0b0000_0010; // dimension 65
        body.string(b"b").string(&bits).node_params(1, 9.0, 0.0);
        let set = parse(&body.end()).unwrap();
        let v = &set.elements[0].vector;
        assert_eq!(v.len(), 70);
        let positive: Vec<usize> = (0..70).filter(|&j| v[j] == 1.0).collect();
        assert_eq!(positive, vec![0, 2, 65]);
        assert!(v.iter().all(|x| *x == 1.0 || *x == -1.0));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let mut body = Body::default();
        body.unsigned(2)
            .unsigned(1)
            .unsigned(0)
            .unsigned(0)
            .string(b"a")
            .string(&[1, 2, 3])
            .node_params(1, 1.0, 0.0);
        let err = parse(&body.end()).unwrap_err();
        assert!(err.problem.contains("expected 8"), "{err}");
        let mut body = Body::default();
        body.unsigned(2).unsigned(0).unsigned(7).unsigned(0);
        assert!(parse(&body.end())
            .unwrap_err()
            .problem
            .contains("quantization"));
        let mut body = Body::default();
        body.unsigned(2).unsigned(5).unsigned(0).unsigned(0);
        assert!(parse(&body.end()).is_err(), "claims 5 elements, has none");
        let good = {
            let mut body = Body::default();
            body.unsigned(1)
                .unsigned(1)
                .unsigned(0)
                .unsigned(0)
                .string(b"a")
                .string(&f32_bytes(&[1.0]));
            body.node_params(1, 1.0, 0.0);
            body.end()
        };
        assert!(parse(&good).is_ok());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn decoder_output_feeds_the_parser() {
        use crate::decode::Decoder;
        use crate::model::{Item, ModuleId, RdbVersion, ValuePart};
        let mut body = Body::default();
        body.unsigned(1)
            .unsigned(1)
            .unsigned(1)
            .unsigned(0)
            .string(b"e")
            .string(&[64])
            .node_params(1, 3.0, 1.0);
        let body = body.end();
        let id = ModuleId::from_name("vectorset", 0).unwrap();
        let mut file = RdbVersion::redis(12).magic().to_vec();
        file.push(crate::types::MODULE_2);
        write_string(&mut file, b"vs", false);
        write_len(&mut file, id.0);
        file.extend_from_slice(&body);
        file.push(crate::types::OP_EOF);
        let crc = crate::crc64::checksum(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        let items: Vec<Item> = Decoder::new(&file[..]).collect::<Result<_, _>>().unwrap();
        let module_body = items
            .iter()
            .find_map(|i| match i {
                Item::Part(ValuePart::Module(b)) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        let set = parse(&module_body).unwrap();
        assert_eq!(set.elements[0].vector, vec![(64.0f32 * 1.0) / 127.0 * 3.0]);
    }
}
