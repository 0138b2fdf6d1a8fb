//! The policy blob: the only definition of the format (spec: `docs/blob-format.md`).
//!
//! A blob is `postcard(Header) ++ postcard(Model)`. The header carries the magic,
//! the format version, the payload length and a CRC-32 of the payload (the
//! postcard encoding of [`Model`]). All tensors are borrowed byte slices
//! ([`Bytes`]) pointing into the blob, so a blob in flash is used in place.
//!
//! Tensor layouts inside a [`Layer`]:
//! * `weights`: int8. `Conv2d`: HWIO, index `((ky * k + kx) * in_c + ic) * out_c + oc`.
//!   `Dense`: input-major, index `i * out + o`, where `i` is the producer's
//!   activation index in HWC order (`(y * W + x) * C + c`), not PyTorch's NCHW.
//! * `biases`: int32 little endian, one per output channel, at scale `in_scale * w_scale[oc]`.
//! * `multipliers`: int32 little endian Q31 mantissas, one per output channel (empty on the last layer).
//! * `shifts`: u8 right shifts `0..=31`, one per output channel (empty on the last layer).
//! * `w_scales`: f32 bit patterns little endian, one per output channel, or exactly one
//!   on the last layer (per-tensor); host reporting only.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::requant::MAX_SHIFT;
use crate::{ACC_CAP, ACT_CAP, MAX_K1, MAX_LAYERS, NUM_ACTIONS, POOL_ROW_CAP, ROWSUM_CAP};

/// The four magic bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"FQDN";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Largest possible encoded header (4 magic + 3 version + 5 length + 4 crc).
pub const MAX_HEADER_BYTES: usize = 16;

/// Why a blob was rejected (or could not be encoded). Never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// The buffer ends before the header or the declared payload does.
    Truncated,
    /// Bytes follow the declared payload, or the payload has bytes after the model.
    TrailingBytes,
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion(u16),
    /// The payload CRC does not match the header.
    CrcMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC of the payload as read.
        actual: u32,
    },
    /// The payload is not a valid postcard encoding of a [`Model`] (includes
    /// more than [`MAX_LAYERS`] layers).
    Malformed,
    /// The input descriptor is not 4x80x80 binary.
    BadInput,
    /// The number of actions is not [`NUM_ACTIONS`].
    BadActionCount,
    /// The model has no layers.
    NoLayers,
    /// This layer kind is not supported at this position (e.g. MaxPool not right
    /// after the first conv, Conv after Dense, last layer not Dense).
    UnsupportedLayer {
        /// Layer index.
        layer: usize,
    },
    /// A layer's declared input does not match the previous output, a dimension
    /// is zero, or the kernel does not fit the (padded) input.
    ShapeMismatch {
        /// Layer index.
        layer: usize,
    },
    /// The final output is not one value per action.
    BadOutput,
    /// A ReLU flag is wrong (hidden compute layers must have ReLU, the last and pools must not).
    BadRelu {
        /// Layer index.
        layer: usize,
    },
    /// A tensor's byte length does not match the layer shape.
    BadLength {
        /// Layer index.
        layer: usize,
        /// Which tensor.
        field: Field,
    },
    /// The layer needs more working memory than this build has.
    CapacityExceeded {
        /// Layer index.
        layer: usize,
    },
    /// A requantization right shift is above 31.
    ShiftOutOfRange {
        /// Layer index.
        layer: usize,
        /// Output channel.
        channel: usize,
    },
    /// A requantization multiplier is negative.
    BadMultiplier {
        /// Layer index.
        layer: usize,
        /// Output channel.
        channel: usize,
    },
    /// Some input could make this channel's int32 accumulator overflow.
    AccumulatorOverflow {
        /// Layer index.
        layer: usize,
        /// Output channel.
        channel: usize,
    },
    /// The output buffer given to the encoder is too small.
    BufferTooSmall,
}

/// The tensor a [`BlobError::BadLength`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `Layer::weights`.
    Weights,
    /// `Layer::biases`.
    Biases,
    /// `Layer::multipliers`.
    Multipliers,
    /// `Layer::shifts`.
    Shifts,
    /// `Layer::w_scales`.
    WScales,
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Field::Weights => "weights",
            Field::Biases => "biases",
            Field::Multipliers => "multipliers",
            Field::Shifts => "shifts",
            Field::WScales => "weight scales",
        })
    }
}

/// One line for people, e.g. `layer 2: needs more working memory than this
/// build has (raise the capacity constants of policy-core)`.
///
/// ```
/// use policy_core::{BlobError, Policy};
/// let err = Policy::from_blob(b"not a blob").unwrap_err();
/// assert_eq!(err, BlobError::BadMagic);
/// assert_eq!(err.to_string(), "not a policy blob (wrong magic bytes)");
/// ```
impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use BlobError as E;
        match *self {
            E::Truncated => f.write_str("truncated: the blob ends before its header or payload does"),
            E::TrailingBytes => f.write_str("unexpected bytes after the end of the model"),
            E::BadMagic => f.write_str("not a policy blob (wrong magic bytes)"),
            E::UnsupportedVersion(v) => write!(
                f,
                "blob format version {v}, but this build reads version {VERSION} only"
            ),
            E::CrcMismatch { expected, actual } => write!(
                f,
                "corrupted: payload CRC-32 is {actual:08x}, the header says {expected:08x}"
            ),
            E::Malformed => f.write_str(
                "malformed payload: not a model encoding (or more than 8 layers)",
            ),
            E::BadInput => f.write_str("the model's input is not 4 stacked 80x80 binary frames"),
            E::BadActionCount => f.write_str("the model does not choose between 2 actions"),
            E::NoLayers => f.write_str("the model has no layers"),
            E::UnsupportedLayer { layer } => write!(
                f,
                "layer {layer}: this kind of layer is not supported at this position"
            ),
            E::ShapeMismatch { layer } => write!(
                f,
                "layer {layer}: its shape does not fit the previous layer's output"
            ),
            E::BadOutput => f.write_str("the last layer does not output one value per action"),
            E::BadRelu { layer } => write!(
                f,
                "layer {layer}: wrong ReLU flag (hidden layers have one, pools and the last layer not)"
            ),
            E::BadLength { layer, field } => {
                write!(f, "layer {layer}: the {field} have the wrong length for its shape")
            }
            E::CapacityExceeded { layer } => write!(
                f,
                "layer {layer}: needs more working memory than this build has (raise the capacity constants of policy-core)"
            ),
            E::ShiftOutOfRange { layer, channel } => write!(
                f,
                "layer {layer}, channel {channel}: requantization shift above 31"
            ),
            E::BadMultiplier { layer, channel } => write!(
                f,
                "layer {layer}, channel {channel}: negative requantization multiplier"
            ),
            E::AccumulatorOverflow { layer, channel } => write!(
                f,
                "layer {layer}, channel {channel}: some input could overflow its 32-bit accumulator"
            ),
            E::BufferTooSmall => f.write_str("the output buffer is too small for the blob"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BlobError {}

/// A borrowed byte string (postcard: varint length, then the raw bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(d).map(Bytes)
    }
}

/// The network input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDesc {
    /// Channels (frames in the stack): 4.
    pub channels: u16,
    /// Height: 80.
    pub height: u16,
    /// Width: 80.
    pub width: u16,
    /// Binary (0/1) input: true.
    pub binary: bool,
}

impl InputDesc {
    /// The only input this crate runs: 4x80x80 binary.
    pub const FLAPPY: InputDesc = InputDesc {
        channels: 4,
        height: 80,
        width: 80,
        binary: true,
    };
}

/// A layer's kind and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerKind {
    /// 2-D convolution, square kernel `k`, `stride`, zero padding `pad` on every side.
    Conv2d {
        /// Input channels.
        in_c: u16,
        /// Output channels.
        out_c: u16,
        /// Kernel side.
        k: u8,
        /// Stride.
        stride: u8,
        /// Zero padding.
        pad: u8,
    },
    /// Max pooling, window and stride `k`, floor (PyTorch `MaxPool2d(k)`).
    MaxPool {
        /// Window side and stride.
        k: u8,
    },
    /// Fully connected.
    Dense {
        /// Inputs.
        inp: u32,
        /// Outputs.
        out: u32,
    },
}

impl LayerKind {
    /// The same layer as a [`netspec::Layer`] (sizes as `usize`).
    pub fn to_netspec(self) -> netspec::Layer {
        match self {
            LayerKind::Conv2d {
                in_c,
                out_c,
                k,
                stride,
                pad,
            } => netspec::Layer::conv(
                in_c as usize,
                out_c as usize,
                k as usize,
                stride as usize,
                pad as usize,
            ),
            LayerKind::MaxPool { k } => netspec::Layer::MaxPool { k: k as usize },
            LayerKind::Dense { inp, out } => netspec::Layer::dense(inp as usize, out as usize),
        }
    }
}

/// One layer: shape, ReLU flag, quantization parameters and tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer<'a> {
    /// Kind and shape.
    pub kind: LayerKind,
    /// ReLU after the layer (true on hidden compute layers; false on the last and on pools).
    pub relu: bool,
    /// f32 bit pattern of the output scale: u8 activation scale for hidden layers,
    /// the Q-value scale (`in_scale * w_scale`) on the last layer. Host reporting only.
    pub out_scale: u32,
    /// f32 LE bit patterns of weight scales (per output channel; one on the last layer).
    #[serde(borrow)]
    pub w_scales: Bytes<'a>,
    /// i32 LE Q31 requantization mantissas, per output channel.
    #[serde(borrow)]
    pub multipliers: Bytes<'a>,
    /// u8 right shifts, per output channel.
    #[serde(borrow)]
    pub shifts: Bytes<'a>,
    /// int8 weights (layouts in the module docs).
    #[serde(borrow)]
    pub weights: Bytes<'a>,
    /// i32 LE biases, per output channel.
    #[serde(borrow)]
    pub biases: Bytes<'a>,
}

impl Layer<'_> {
    /// A parameterless max-pool layer.
    pub const fn max_pool(k: u8) -> Layer<'static> {
        Layer {
            kind: LayerKind::MaxPool { k },
            relu: false,
            out_scale: 0,
            w_scales: Bytes(&[]),
            multipliers: Bytes(&[]),
            shifts: Bytes(&[]),
            weights: Bytes(&[]),
            biases: Bytes(&[]),
        }
    }
}

/// The payload: everything but the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model<'a> {
    /// Network input descriptor (must be [`InputDesc::FLAPPY`]).
    pub input: InputDesc,
    /// Number of actions (must be [`NUM_ACTIONS`]).
    pub num_actions: u8,
    /// The layers, input to output.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    magic: [u8; 4],
    version: u16,
    payload_len: u32,
    crc: [u8; 4],
}

/// A tensor shape, channels-height-width (dense vectors are `c x 1 x 1`).
pub use netspec::Shape;

/// One compute stage of a validated model: a Conv2d or Dense layer, plus the
/// MaxPool that directly follows it (fused), with the resolved shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Index of the compute layer in `Model::layers`.
    pub layer: usize,
    /// Pool window (1 = no pool).
    pub pool: usize,
    /// Input shape.
    pub input: Shape,
    /// Output shape of the conv / dense before pooling.
    pub pre_pool: Shape,
    /// Output shape after pooling.
    pub output: Shape,
    /// Whether this is the last stage (raw i32 Q-values out).
    pub last: bool,
}

/// The compute stages of a validated model.
pub type Stages = heapless::Vec<Stage, MAX_LAYERS>;

#[inline]
pub(crate) fn le_i32(b: &[u8], i: usize) -> i32 {
    let at = i.saturating_mul(4);
    match b.get(at..at.saturating_add(4)) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl<'a> Model<'a> {
    /// Decodes and validates a whole blob (header, CRC, model).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<(Model<'a>, Stages), BlobError> {
        if bytes.len() < 4 {
            return Err(BlobError::Truncated);
        }
        if bytes[..4] != MAGIC {
            return Err(BlobError::BadMagic);
        }
        let (header, rest): (Header, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|_| BlobError::Truncated)?;
        if header.version != VERSION {
            return Err(BlobError::UnsupportedVersion(header.version));
        }
        let len = header.payload_len as usize;
        if rest.len() < len {
            return Err(BlobError::Truncated);
        }
        if rest.len() > len {
            return Err(BlobError::TrailingBytes);
        }
        let expected = u32::from_le_bytes(header.crc);
        let actual = crate::crc::crc32(rest);
        if expected != actual {
            return Err(BlobError::CrcMismatch { expected, actual });
        }
        let (model, tail): (Model<'a>, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|_| BlobError::Malformed)?;
        if !tail.is_empty() {
            return Err(BlobError::TrailingBytes);
        }
        let stages = model.validate()?;
        Ok((model, stages))
    }

    /// Validates and encodes the model as a blob into `buf`; returns the blob length.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, BlobError> {
        self.validate()?;
        self.encode_into_unvalidated(buf)
    }

    /// Encodes without validating (for decoder tests that need hostile blobs
    /// with a correct CRC); [`Model::encode_into`] is the exporter's entry point.
    pub fn encode_into_unvalidated(&self, buf: &mut [u8]) -> Result<usize, BlobError> {
        if buf.len() < MAX_HEADER_BYTES {
            return Err(BlobError::BufferTooSmall);
        }
        let payload_len = postcard::to_slice(self, &mut buf[MAX_HEADER_BYTES..])
            .map_err(|_| BlobError::BufferTooSmall)?
            .len();
        let mut hbuf = [0u8; MAX_HEADER_BYTES];
        let hlen = header_into(
            &buf[MAX_HEADER_BYTES..MAX_HEADER_BYTES + payload_len],
            VERSION,
            &mut hbuf,
        )?;
        buf.copy_within(MAX_HEADER_BYTES..MAX_HEADER_BYTES + payload_len, hlen);
        buf[..hlen].copy_from_slice(&hbuf[..hlen]);
        Ok(hlen + payload_len)
    }

    /// Checks every structural and numeric property inference relies on and
    /// resolves the compute stages.
    pub fn validate(&self) -> Result<Stages, BlobError> {
        if self.input != InputDesc::FLAPPY {
            return Err(BlobError::BadInput);
        }
        if self.num_actions as usize != NUM_ACTIONS {
            return Err(BlobError::BadActionCount);
        }
        if self.layers.is_empty() {
            return Err(BlobError::NoLayers);
        }
        let n = self.layers.len();
        let mut stages = Stages::new();
        let mut shape = netspec::INPUT;
        let mut seen_dense = false;
        for (i, layer) in self.layers.iter().enumerate() {
            let last = i + 1 == n;
            let kind = layer.kind.to_netspec();
            // The shape rules are netspec's (sizes chain, kernels and windows fit).
            let next = netspec::next_shape(&kind, shape);
            shape = match kind {
                netspec::Layer::MaxPool { k } => {
                    let prev_is_first_conv =
                        i == 1 && matches!(self.layers[0].kind, LayerKind::Conv2d { .. });
                    if !prev_is_first_conv || last {
                        return Err(BlobError::UnsupportedLayer { layer: i });
                    }
                    check_pool(layer, i, k, next, &mut stages)?
                }
                netspec::Layer::Conv { .. } => {
                    if seen_dense || last {
                        return Err(BlobError::UnsupportedLayer { layer: i });
                    }
                    self.check_conv(i, kind, shape, next, &mut stages)?
                }
                netspec::Layer::Dense { inp, out } => {
                    if i == 0 {
                        return Err(BlobError::UnsupportedLayer { layer: i });
                    }
                    seen_dense = true;
                    let o = next.ok_or(BlobError::ShapeMismatch { layer: i })?;
                    if out > ACC_CAP || (!last && out > ACT_CAP) {
                        return Err(BlobError::CapacityExceeded { layer: i });
                    }
                    check_len_of(layer.weights, product(&[inp, out]), i, Field::Weights)?;
                    self.check_params(layer, i, out, last)?;
                    check_accumulators(layer, i, out, 255)?;
                    push_stage(&mut stages, i, shape, o, last)?;
                    o
                }
            };
        }
        let last = self.layers[n - 1];
        if !matches!(last.kind, LayerKind::Dense { .. }) {
            return Err(BlobError::UnsupportedLayer { layer: n - 1 });
        }
        if shape.len() != self.num_actions as usize {
            return Err(BlobError::BadOutput);
        }
        Ok(stages)
    }

    /// The checks of conv layer `i` (`kind`) on input `shape`, whose output
    /// is `next` (`None`: it does not fit); its output shape.
    fn check_conv(
        &self,
        i: usize,
        kind: netspec::Layer,
        shape: Shape,
        next: Option<Shape>,
        stages: &mut Stages,
    ) -> Result<Shape, BlobError> {
        let netspec::Layer::Conv {
            in_c,
            out_c,
            k,
            pad: p,
            ..
        } = kind
        else {
            return Err(BlobError::UnsupportedLayer { layer: i });
        };
        let layer = &self.layers[i];
        let out = next.ok_or(BlobError::ShapeMismatch { layer: i })?;
        if out_c > ACC_CAP {
            return Err(BlobError::CapacityExceeded { layer: i });
        }
        let is_next_pool = matches!(
            self.layers.get(i + 1).map(|l| l.kind),
            Some(LayerKind::MaxPool { .. })
        );
        if i == 0 {
            // Binary kernel: a k-bit window of a padded 80-bit row in a u128.
            if k > MAX_K1
                || exceeds(&[in_c, k, out_c], ROWSUM_CAP)
                || shape.w.saturating_add(p.saturating_mul(2)) > 128
            {
                return Err(BlobError::CapacityExceeded { layer: i });
            }
            // The running-max row holds one *output* row: the pooled width when a
            // pool follows (checked there), the conv's own width otherwise.
            if !is_next_pool && exceeds(&[out.w, out.c], POOL_ROW_CAP) {
                return Err(BlobError::CapacityExceeded { layer: i });
            }
        }
        // A length no memory can hold (the product overflows `usize`, as
        // ~1.7e10 does on 32-bit targets) is wrong too.
        let wlen = product(&[k, k, in_c, out_c]);
        check_len_of(layer.weights, wlen, i, Field::Weights)?;
        if !is_next_pool && out.len() > ACT_CAP {
            return Err(BlobError::CapacityExceeded { layer: i });
        }
        self.check_params(layer, i, out_c, false)?;
        check_accumulators(layer, i, out_c, if i == 0 { 1 } else { 255 })?;
        push_stage(stages, i, shape, out, false)?;
        Ok(out)
    }

    fn check_params(
        &self,
        layer: &Layer,
        i: usize,
        out_c: usize,
        last: bool,
    ) -> Result<(), BlobError> {
        check_len_of(layer.biases, product(&[out_c, 4]), i, Field::Biases)?;
        if last {
            if layer.relu {
                return Err(BlobError::BadRelu { layer: i });
            }
            check_len(layer.w_scales, 4, i, Field::WScales)?;
            check_len(layer.multipliers, 0, i, Field::Multipliers)?;
            check_len(layer.shifts, 0, i, Field::Shifts)?;
            return Ok(());
        }
        if !layer.relu {
            return Err(BlobError::BadRelu { layer: i });
        }
        check_len_of(layer.w_scales, product(&[out_c, 4]), i, Field::WScales)?;
        check_len_of(
            layer.multipliers,
            product(&[out_c, 4]),
            i,
            Field::Multipliers,
        )?;
        check_len(layer.shifts, out_c, i, Field::Shifts)?;
        for oc in 0..out_c {
            if layer.shifts.0[oc] > MAX_SHIFT {
                return Err(BlobError::ShiftOutOfRange {
                    layer: i,
                    channel: oc,
                });
            }
            if le_i32(layer.multipliers.0, oc) < 0 {
                return Err(BlobError::BadMultiplier {
                    layer: i,
                    channel: oc,
                });
            }
        }
        Ok(())
    }
}

fn header_into(payload: &[u8], version: u16, out: &mut [u8]) -> Result<usize, BlobError> {
    let header = Header {
        magic: MAGIC,
        version,
        payload_len: u32::try_from(payload.len()).map_err(|_| BlobError::BufferTooSmall)?,
        crc: crate::crc::crc32(payload).to_le_bytes(),
    };
    Ok(postcard::to_slice(&header, out)
        .map_err(|_| BlobError::BufferTooSmall)?
        .len())
}

/// Writes a header (magic, `version`, length, CRC of `payload`) followed by
/// `payload` into `out`; returns the blob length. The payload is not checked:
/// this is how tests build blobs with arbitrary payloads and a correct CRC.
pub fn seal(payload: &[u8], version: u16, out: &mut [u8]) -> Result<usize, BlobError> {
    let hlen = header_into(payload, version, out)?;
    let end = hlen
        .checked_add(payload.len())
        .ok_or(BlobError::BufferTooSmall)?;
    out.get_mut(hlen..end)
        .ok_or(BlobError::BufferTooSmall)?
        .copy_from_slice(payload);
    Ok(end)
}

/// Appends the stage of compute layer `layer` (no pool yet).
fn push_stage(
    stages: &mut Stages,
    layer: usize,
    input: Shape,
    out: Shape,
    last: bool,
) -> Result<(), BlobError> {
    let st = Stage {
        layer,
        pool: 1,
        input,
        pre_pool: out,
        output: out,
        last,
    };
    stages.push(st).map_err(|_| BlobError::Malformed)
}

/// The checks of max-pool layer `i` (window `k`), whose output is `next`
/// (`None`: the window does not fit): fused into the last stage, its
/// pooled shape.
fn check_pool(
    layer: &Layer,
    i: usize,
    k: usize,
    next: Option<Shape>,
    stages: &mut Stages,
) -> Result<Shape, BlobError> {
    if layer.relu {
        return Err(BlobError::BadRelu { layer: i });
    }
    empty_params(layer, i)?;
    let pooled = next.ok_or(BlobError::ShapeMismatch { layer: i })?;
    let st = stages
        .last_mut()
        .ok_or(BlobError::UnsupportedLayer { layer: i })?;
    st.pool = k;
    st.output = pooled;
    if exceeds(&[pooled.w, pooled.c], POOL_ROW_CAP) || pooled.len() > ACT_CAP {
        return Err(BlobError::CapacityExceeded { layer: i });
    }
    Ok(pooled)
}

/// No accumulator of layer `i` (`out` channels, inputs up to `max_in`) can
/// overflow ([`check_overflow`], channel by channel).
fn check_accumulators(layer: &Layer, i: usize, out: usize, max_in: i64) -> Result<(), BlobError> {
    for ch in 0..out {
        let sum = sum_abs_weights(layer.weights.0, ch, out);
        check_overflow(sum, max_in, le_i32(layer.biases.0, ch), i, ch)?;
    }
    Ok(())
}

/// `sum |w|` over output channel `o`'s weights (`o`, `o + out`, ...).
fn sum_abs_weights(weights: &[u8], o: usize, out: usize) -> i64 {
    weights
        .iter()
        .skip(o)
        .step_by(out)
        .map(|&w| (w as i8 as i64).abs())
        .sum()
}

fn empty_params(layer: &Layer, i: usize) -> Result<(), BlobError> {
    check_len(layer.weights, 0, i, Field::Weights)?;
    check_len(layer.biases, 0, i, Field::Biases)?;
    check_len(layer.multipliers, 0, i, Field::Multipliers)?;
    check_len(layer.shifts, 0, i, Field::Shifts)?;
    check_len(layer.w_scales, 0, i, Field::WScales)
}

fn check_len(b: Bytes, want: usize, layer: usize, field: Field) -> Result<(), BlobError> {
    check_len_of(b, Some(want), layer, field)
}

/// [`check_len`] of a computed length, `None` when its computation
/// overflowed (no tensor has that length).
fn check_len_of(
    b: Bytes,
    want: Option<usize>,
    layer: usize,
    field: Field,
) -> Result<(), BlobError> {
    if Some(b.0.len()) == want {
        Ok(())
    } else {
        Err(BlobError::BadLength { layer, field })
    }
}

/// The product of `factors`, or `None` when it does not fit `usize` (every
/// size computed from a blob's fields goes through here or a checked
/// operation, so a 32-bit target validates exactly like a 64-bit one).
fn product(factors: &[usize]) -> Option<usize> {
    factors.iter().try_fold(1usize, |p, &f| p.checked_mul(f))
}

/// Whether the product of `factors` exceeds `cap` (or overflows).
fn exceeds(factors: &[usize], cap: usize) -> bool {
    product(factors).is_none_or(|n| n > cap)
}

/// Worst case `sum |w| * max_in + |bias|` must fit in i32 (and so must every
/// partial sum, which is bounded by it).
fn check_overflow(
    sum_abs_w: i64,
    max_in: i64,
    bias: i32,
    layer: usize,
    channel: usize,
) -> Result<(), BlobError> {
    let bound = sum_abs_w * max_in + (bias as i64).abs();
    if bound > i32::MAX as i64 {
        Err(BlobError::AccumulatorOverflow { layer, channel })
    } else {
        Ok(())
    }
}

/// Worst-case accumulator magnitude of every output channel of layer `layer`
/// (`sum |w| * max_in + |bias|`, max over channels), for host reports.
pub fn worst_case_accumulator(model: &Model, layer: usize) -> i64 {
    let Some(l) = model.layers.get(layer) else {
        return 0;
    };
    let (out, max_in) = match l.kind {
        LayerKind::Conv2d { out_c, .. } => (out_c as usize, if layer == 0 { 1 } else { 255 }),
        LayerKind::Dense { out, .. } => (out as usize, 255),
        LayerKind::MaxPool { .. } => return 0,
    };
    (0..out)
        .map(|o| {
            sum_abs_weights(l.weights.0, o, out) * max_in + (le_i32(l.biases.0, o) as i64).abs()
        })
        .max()
        .unwrap_or(0)
}
