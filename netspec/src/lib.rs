//! The Q-network architectures, described once, as data.
//!
//! Everything that depends on an architecture derives it from an [`Arch`]:
//! the trainer's libtorch module, the float reference network of the
//! quantizer, the blob's layer list, the random blobs of tests and the MCU
//! budget checks. Adding an architecture is one more `const` and one more
//! entry in [`ALL`].
//!
//! The input is always the 4 stacked 80x80 binary frames ([`INPUT`]). Every
//! conv and dense layer except the last is followed by a ReLU; a max-pool may
//! only follow the first conv (what `policy-core` runs).
//!
//! ```
//! let arch = netspec::by_name("compact").unwrap();
//! assert_eq!(arch.check(), Ok(()));
//! let out = arch.output_shape(arch.layers.len() - 1);
//! assert_eq!((out.c, out.h, out.w), (2, 1, 1)); // two Q-values
//! assert!(arch.relu(0) && !arch.relu(arch.layers.len() - 1));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// One layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// 2-D convolution with a square `k x k` kernel, `stride`, and `pad` zeros
    /// on every side: an `H x W` map gives `(H + 2 pad - k) / stride + 1` rows
    /// (likewise columns).
    Conv {
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
    },
    /// Max-pool with window and stride `k` (floor: trailing rows are dropped).
    MaxPool {
        /// Window side and stride.
        k: usize,
    },
    /// Fully connected layer over the flattened previous output.
    Dense {
        /// Inputs.
        inp: usize,
        /// Outputs.
        out: usize,
    },
}

impl Layer {
    /// A [`Layer::Conv`].
    pub const fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> Layer {
        Layer::Conv {
            in_c,
            out_c,
            k,
            stride,
            pad,
        }
    }

    /// A [`Layer::Dense`].
    pub const fn dense(inp: usize, out: usize) -> Layer {
        Layer::Dense { inp, out }
    }

    /// The inputs each output reads (one weight each): `in_c * k * k` for a
    /// conv, `inp` for a dense layer, 0 for a pool (it has no parameters).
    pub const fn fan_in(&self) -> usize {
        match *self {
            Layer::Conv { in_c, k, .. } => in_c * k * k,
            Layer::MaxPool { .. } => 0,
            Layer::Dense { inp, .. } => inp,
        }
    }

    /// Output channels of a conv, outputs of a dense layer (one bias each);
    /// 0 for a pool. The weights number `outputs() * fan_in()`.
    pub const fn outputs(&self) -> usize {
        match *self {
            Layer::Conv { out_c, .. } => out_c,
            Layer::MaxPool { .. } => 0,
            Layer::Dense { out, .. } => out,
        }
    }
}

/// An activation shape: channels x height x width (a dense output is `n x 1 x 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// Number of values. Every shape [`next_shape`] returns has a `len` that
    /// fits `usize` (also a 32-bit one); for other shapes see
    /// [`Shape::checked_len`].
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Number of values, or `None` when it does not fit `usize`.
    pub const fn checked_len(&self) -> Option<usize> {
        match self.c.checked_mul(self.h) {
            Some(ch) => ch.checked_mul(self.w),
            None => None,
        }
    }

    /// Whether the shape holds no value.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The network input: 4 stacked 80x80 binary frames.
pub const INPUT: Shape = Shape { c: 4, h: 80, w: 80 };

/// Number of outputs (Q-values): Idle, Flap.
pub const NUM_ACTIONS: usize = 2;

/// A named architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// The name used on the command line and in configs.
    pub name: &'static str,
    /// One line for `--help` and reports.
    pub about: &'static str,
    /// The layers, input to output.
    pub layers: &'static [Layer],
}

/// Why an architecture is inconsistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Layer `i` does not take the previous output (channels, inputs), or its
    /// kernel or pool window does not fit, or a size is zero.
    Shape(usize),
    /// Layer `i` is where it may not be (no layers, a pool not right after the
    /// first conv, a conv after a dense layer, a last layer that is not dense).
    Placement(usize),
    /// The last layer does not output [`NUM_ACTIONS`] values.
    Outputs,
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpecError::Shape(i) => write!(f, "layer {i} does not fit the previous layer's output"),
            SpecError::Placement(i) => write!(f, "layer {i} is not allowed at this position"),
            SpecError::Outputs => write!(f, "the last layer does not output {NUM_ACTIONS} values"),
        }
    }
}

impl Arch {
    /// The output shape of layer `i`, from [`INPUT`] (no checks: see [`Arch::check`]).
    pub fn output_shape(&self, i: usize) -> Shape {
        let mut s = INPUT;
        for l in &self.layers[..=i] {
            s = next_shape(l, s).unwrap_or(Shape { c: 0, h: 0, w: 0 });
        }
        s
    }

    /// The input shape of layer `i`.
    pub fn input_shape(&self, i: usize) -> Shape {
        if i == 0 {
            INPUT
        } else {
            self.output_shape(i - 1)
        }
    }

    /// Whether layer `i` is followed by a ReLU: every conv and dense layer
    /// but the last.
    pub fn relu(&self, i: usize) -> bool {
        i + 1 < self.layers.len() && !matches!(self.layers[i], Layer::MaxPool { .. })
    }

    /// Checks that the layers chain from [`INPUT`] to [`NUM_ACTIONS`] outputs
    /// and are placed as `policy-core` runs them.
    pub fn check(&self) -> Result<(), SpecError> {
        let n = self.layers.len();
        if n == 0 {
            return Err(SpecError::Placement(0));
        }
        let mut s = INPUT;
        let mut seen_dense = false;
        for (i, l) in self.layers.iter().enumerate() {
            match l {
                Layer::Conv { .. } if seen_dense || i + 1 == n => {
                    return Err(SpecError::Placement(i))
                }
                Layer::MaxPool { .. }
                    if i != 1 || !matches!(self.layers[0], Layer::Conv { .. }) || i + 1 == n =>
                {
                    return Err(SpecError::Placement(i))
                }
                Layer::Dense { .. } => seen_dense = true,
                _ => {}
            }
            s = next_shape(l, s).ok_or(SpecError::Shape(i))?;
        }
        if s.len() != NUM_ACTIONS {
            return Err(SpecError::Outputs);
        }
        Ok(())
    }

    /// Weights and biases.
    pub fn params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.outputs() * (l.fan_in() + 1))
            .sum()
    }

    /// Multiply-accumulates of one forward pass: a weight per output value
    /// and input it reads.
    pub fn macs(&self) -> usize {
        (0..self.layers.len())
            .map(|i| self.output_shape(i).len() * self.layers[i].fan_in())
            .sum()
    }
}

/// The shape after `l` applied to `s`, or `None` if it does not fit. Every
/// size is computed with checked arithmetic, so a layer read from outside
/// (a blob) whose output would not fit `usize` (a 32-bit one included) is
/// `None` too, and the shape returned has a [`Shape::len`] that fits.
pub fn next_shape(l: &Layer, s: Shape) -> Option<Shape> {
    let out = match *l {
        Layer::Conv {
            in_c,
            out_c,
            k,
            stride,
            pad,
        } => {
            if in_c != s.c || out_c == 0 || k == 0 || stride == 0 || pad >= k {
                return None;
            }
            let side =
                |n: usize| Some(n.checked_add(pad.checked_mul(2)?)?.checked_sub(k)? / stride + 1);
            Shape {
                c: out_c,
                h: side(s.h)?,
                w: side(s.w)?,
            }
        }
        Layer::MaxPool { k } => {
            if k == 0 || k > s.h || k > s.w {
                return None;
            }
            Shape {
                c: s.c,
                h: s.h / k,
                w: s.w / k,
            }
        }
        Layer::Dense { inp, out } => {
            if Some(inp) != s.checked_len() || out == 0 {
                return None;
            }
            Shape { c: out, h: 1, w: 1 }
        }
    };
    out.checked_len().map(|_| out)
}

/// The classic DQN network: conv 8x8/4 p2 -> 32, maxpool 2; conv 4x4/2 p1 ->
/// 64; conv 3x3/1 p1 -> 64; fc 1600 -> 512; fc 512 -> 2.
pub const CLASSIC: Arch = Arch {
    name: "classic",
    about: "the classic DQN net: conv 8x8/4 -> 32, pool 2, conv 4x4/2 -> 64, conv 3x3 -> 64, fc 1600 -> 512 -> 2",
    layers: &[
        Layer::conv(4, 32, 8, 4, 2),
        Layer::MaxPool { k: 2 },
        Layer::conv(32, 64, 4, 2, 1),
        Layer::conv(64, 64, 3, 1, 1),
        Layer::dense(1600, 512),
        Layer::dense(512, 2),
    ],
};

/// Half the classic net's channels, one conv fewer: conv 8x8/4 p2 -> 16,
/// maxpool 2; conv 4x4/2 p1 -> 32; fc 800 -> 128; fc 128 -> 2.
pub const SMALL: Arch = Arch {
    name: "small",
    about: "for small MCUs: conv 8x8/4 -> 16, pool 2, conv 4x4/2 -> 32, fc 800 -> 128 -> 2",
    layers: &[
        Layer::conv(4, 16, 8, 4, 2),
        Layer::MaxPool { k: 2 },
        Layer::conv(16, 32, 4, 2, 1),
        Layer::dense(800, 128),
        Layer::dense(128, 2),
    ],
};

/// Shaped for the binary 80x80 input, about a quarter of `classic`'s
/// multiply-adds: conv 4x4/4 -> 16 (non-overlapping 4x4 patches), maxpool 2;
/// conv 3x3/1 p1 -> 32; conv 3x3/2 p1 -> 32; fc 800 -> 256; fc 256 -> 2.
pub const COMPACT: Arch = Arch {
    name: "compact",
    about: "the default: conv 4x4/4 -> 16, pool 2, conv 3x3 -> 32, conv 3x3/2 -> 32, fc 800 -> 256 -> 2",
    layers: &[
        Layer::conv(4, 16, 4, 4, 0),
        Layer::MaxPool { k: 2 },
        Layer::conv(16, 32, 3, 1, 1),
        Layer::conv(32, 32, 3, 2, 1),
        Layer::dense(800, 256),
        Layer::dense(256, 2),
    ],
};

/// `compact` with its max-pool replaced by a strided conv, so the fine
/// vertical position of the bird against a pipe edge, which a max over 2x2
/// patches blurs, reaches the later layers: conv 4x4/4 -> 16; conv 4x4/2 p1
/// -> 32; conv 3x3/2 p1 -> 32; fc 800 -> 256; fc 256 -> 2 (1.7 M
/// multiply-adds, same receptive field as `compact`).
pub const STRIDED: Arch = Arch {
    name: "strided",
    about: "compact without the pool: conv 4x4/4 -> 16, conv 4x4/2 -> 32, conv 3x3/2 -> 32, fc 800 -> 256 -> 2",
    layers: &[
        Layer::conv(4, 16, 4, 4, 0),
        Layer::conv(16, 32, 4, 2, 1),
        Layer::conv(32, 32, 3, 2, 1),
        Layer::dense(800, 256),
        Layer::dense(256, 2),
    ],
};

/// For the 16 KiB Cortex-M0: conv 4x4/4 -> 8, maxpool 2; conv 3x3/2 p1 -> 16;
/// fc 400 -> 64; fc 64 -> 2 (about 27 k weights, 0.2 M multiply-adds).
pub const TINY: Arch = Arch {
    name: "tiny",
    about: "for a 16 KiB Cortex-M0: conv 4x4/4 -> 8, pool 2, conv 3x3/2 -> 16, fc 400 -> 64 -> 2",
    layers: &[
        Layer::conv(4, 8, 4, 4, 0),
        Layer::MaxPool { k: 2 },
        Layer::conv(8, 16, 3, 2, 1),
        Layer::dense(400, 64),
        Layer::dense(64, 2),
    ],
};

/// Every architecture, by name.
pub const ALL: &[Arch] = &[COMPACT, CLASSIC, SMALL, STRIDED, TINY];

/// The architecture called `name`.
pub fn by_name(name: &str) -> Option<Arch> {
    ALL.iter().copied().find(|a| a.name == name)
}

/// A name that is not in [`ALL`]; its `Display` lists the names there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownArch;

impl core::fmt::Display for UnknownArch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown network (expected one of:")?;
        for a in ALL {
            write!(f, " {}", a.name)?;
        }
        f.write_str(")")
    }
}

impl core::error::Error for UnknownArch {}

/// An architecture prints as its name.
impl core::fmt::Display for Arch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

/// An architecture parses from its name: `"compact".parse::<Arch>()`.
impl core::str::FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(name: &str) -> Result<Arch, UnknownArch> {
        by_name(name).ok_or(UnknownArch)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn every_architecture_is_consistent_and_named_once() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(a.check(), Ok(()), "{}", a.name);
            assert_eq!(by_name(a.name), Some(*a));
            assert!(ALL[..i].iter().all(|b| b.name != a.name));
        }
        assert_eq!(by_name("nope"), None);
        for a in ALL {
            assert_eq!(std::format!("{a}"), a.name);
            assert_eq!(a.name.parse::<Arch>(), Ok(*a));
        }
        assert_eq!("nope".parse::<Arch>(), Err(UnknownArch));
        let e = std::format!("{UnknownArch}");
        assert!(ALL.iter().all(|a| e.contains(a.name)), "{e}");
    }

    #[test]
    fn shapes_follow_the_conv_formula() {
        // compact: 80 -> conv 4/4 -> 20 -> pool 2 -> 10 -> conv 3/1 p1 -> 10 -> conv 3/2 p1 -> 5.
        let s: [Shape; 6] = core::array::from_fn(|i| COMPACT.output_shape(i));
        assert_eq!(
            s[0],
            Shape {
                c: 16,
                h: 20,
                w: 20
            }
        );
        assert_eq!(
            s[1],
            Shape {
                c: 16,
                h: 10,
                w: 10
            }
        );
        assert_eq!(
            s[2],
            Shape {
                c: 32,
                h: 10,
                w: 10
            }
        );
        assert_eq!(s[3], Shape { c: 32, h: 5, w: 5 });
        assert_eq!(s[4].len(), 256);
        // classic: 80 + 4 - 8 = 76, / 4 + 1 = 20.
        assert_eq!(
            CLASSIC.output_shape(0),
            Shape {
                c: 32,
                h: 20,
                w: 20
            }
        );
        assert_eq!(CLASSIC.output_shape(3).len(), 1600);
    }

    #[test]
    fn sizes() {
        // Matches docs/learning.md: 1.3 M vs 5.8 M multiply-adds.
        assert_eq!(COMPACT.macs(), 409_600 + 460_800 + 230_400 + 204_800 + 512);
        assert!(CLASSIC.macs() > 4 * COMPACT.macs());
        assert_eq!(STRIDED.macs(), 409_600 + 819_200 + 230_400 + 204_800 + 512);
        assert_eq!(STRIDED.output_shape(0).len(), 20 * 20 * 16);
        assert!(TINY.params() < 32 * 1024);
    }

    /// Sizes read from outside (a blob) may be huge: a shape whose size
    /// does not fit `usize` is no shape, on 64-bit and 32-bit targets alike.
    #[test]
    fn sizes_that_overflow_are_no_shape() {
        let big = Shape {
            c: usize::MAX / 2,
            h: 3,
            w: 1,
        };
        assert_eq!(big.checked_len(), None);
        assert_eq!(next_shape(&Layer::MaxPool { k: 1 }, big), None);
        assert_eq!(next_shape(&Layer::dense(usize::MAX, 2), big), None);
        let wide = Layer::conv(4, usize::MAX / 1000, 1, 1, 0);
        assert_eq!(next_shape(&wide, INPUT), None);
        let padded = Layer::conv(4, 2, usize::MAX / 2 + 2, 1, usize::MAX / 2 + 1);
        assert_eq!(next_shape(&padded, INPUT), None);
        assert_eq!(INPUT.checked_len(), Some(25_600));
    }

    #[test]
    fn inconsistent_architectures_are_refused() {
        const BAD_DENSE: Arch = Arch {
            name: "x",
            about: "",
            layers: &[Layer::conv(4, 8, 4, 4, 0), Layer::dense(3199, 2)],
        };
        assert_eq!(BAD_DENSE.check(), Err(SpecError::Shape(1)));
        const POOL_LATE: Arch = Arch {
            name: "x",
            about: "",
            layers: &[
                Layer::conv(4, 8, 4, 4, 0),
                Layer::conv(8, 8, 2, 2, 0),
                Layer::MaxPool { k: 2 },
                Layer::dense(200, 2),
            ],
        };
        assert_eq!(POOL_LATE.check(), Err(SpecError::Placement(2)));
        const WRONG_OUT: Arch = Arch {
            name: "x",
            about: "",
            layers: &[Layer::dense(25_600, 3)],
        };
        assert_eq!(WRONG_OUT.check(), Err(SpecError::Outputs));
    }
}
