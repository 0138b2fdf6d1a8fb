//! The pyo3 module `flappy_dqn._native` (feature `python`). The Python
//! package wraps it (`flappy_dqn/*.py`): Gymnasium's classes, argument
//! checks with Gymnasium's exceptions, the PyTorch network.

use crate::envs::{EnvError, Envs, StepOut};
use crate::obs::ObsFormat;
use crate::policy::OwnedPolicy;
use flappy::{seeds, FrameStack};
use numpy::{
    IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1,
    PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;

pyo3::create_exception!(
    _native,
    BlobError,
    PyValueError,
    "A policy blob that policy-core's parser refused; the message is the parser's."
);

fn env_err(e: EnvError) -> PyErr {
    match e {
        EnvError::EpisodeOver { .. } => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn contiguous<T>(r: Result<T, numpy::AsSliceError>, what: &str) -> PyResult<T> {
    r.map_err(|_| PyValueError::new_err(format!("{what} must be a C-contiguous array")))
}

/// `n` games stepped in Rust (`flappy_py::Envs`), writing into NumPy arrays
/// that the caller allocates once; the GIL is released while they step.
#[pyclass(name = "VecCore", module = "flappy_dqn._native")]
struct PyEnvs {
    inner: Envs,
}

#[pymethods]
impl PyEnvs {
    #[new]
    #[pyo3(signature = (num_envs, packed = false, max_score = None, autoreset = true))]
    fn new(
        num_envs: usize,
        packed: bool,
        max_score: Option<u32>,
        autoreset: bool,
    ) -> PyResult<Self> {
        if num_envs == 0 {
            return Err(PyValueError::new_err("num_envs must be at least 1"));
        }
        let format = if packed {
            ObsFormat::Packed
        } else {
            ObsFormat::Cells
        };
        Ok(PyEnvs {
            inner: Envs::new(num_envs, format, max_score, autoreset),
        })
    }

    /// Number of games.
    #[getter]
    fn num_envs(&self) -> usize {
        self.inner.len()
    }

    /// The shape of one observation.
    #[getter]
    fn obs_shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.inner.format().shape();
        (c, h, w)
    }

    /// Resets game `i` to `Game::new(seed)` for each seed given, or to the
    /// next game of its stream for `None`, then writes every observation.
    fn reset(&mut self, seeds: Vec<Option<u64>>, mut obs: PyReadwriteArrayDyn<u8>) -> PyResult<()> {
        if seeds.len() != self.inner.len() {
            return Err(env_err(EnvError::Length {
                what: "seeds",
                got: seeds.len(),
                expected: self.inner.len(),
            }));
        }
        let out = contiguous(obs.as_slice_mut(), "obs")?;
        for (i, s) in seeds.into_iter().enumerate() {
            self.inner.reset(i, s);
        }
        self.inner.observe_all(out).map_err(env_err)
    }

    /// Steps every game (see `flappy_py::envs`), writing into the arrays.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        py: Python<'_>,
        actions: PyReadonlyArray1<u8>,
        mut obs: PyReadwriteArrayDyn<u8>,
        mut reward: PyReadwriteArray1<f64>,
        mut terminated: PyReadwriteArray1<bool>,
        mut truncated: PyReadwriteArray1<bool>,
        mut score: PyReadwriteArray1<i64>,
    ) -> PyResult<()> {
        let actions = contiguous(actions.as_slice(), "actions")?;
        let out = StepOut {
            obs: contiguous(obs.as_slice_mut(), "obs")?,
            reward: contiguous(reward.as_slice_mut(), "reward")?,
            terminated: contiguous(terminated.as_slice_mut(), "terminated")?,
            truncated: contiguous(truncated.as_slice_mut(), "truncated")?,
            score: contiguous(score.as_slice_mut(), "score")?,
        };
        let envs = &mut self.inner;
        py.detach(move || envs.step(actions, out)).map_err(env_err)
    }

    /// Game `i` as a `(512, 288, 3)` RGB image.
    fn render<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
        self.check_index(i)?;
        let (w, h) = (flappy::render::WIDTH, flappy::render::HEIGHT);
        self.inner
            .render_rgb(i)
            .into_pyarray(py)
            .reshape(vec![h, w, 3])
    }

    /// The scripted look-ahead controller's action in every game.
    fn heuristic_actions<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<u8>> {
        let v: Vec<u8> = (0..self.inner.len())
            .map(|i| self.inner.heuristic_action(i))
            .collect();
        v.into_pyarray(py)
    }
}

impl PyEnvs {
    fn check_index(&self, i: usize) -> PyResult<()> {
        if i < self.inner.len() {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "env index {i} out of range (num_envs {})",
                self.inner.len()
            )))
        }
    }
}

/// The frame stacks in `obs`: `(4, 80, 80)` cells or `(4, 80, 10)` packed
/// bytes, or a batch of either; and whether it was a batch.
fn stacks_of(obs: &Bound<'_, PyAny>) -> PyResult<(Vec<FrameStack>, bool)> {
    let arr = obs.cast::<PyArrayDyn<u8>>().map_err(|_| {
        let dtype = obs
            .getattr("dtype")
            .map(|d| d.to_string())
            .unwrap_or_else(|_| obs.get_type().to_string());
        PyTypeError::new_err(format!(
            "obs must be a numpy uint8 array of shape (4, 80, 80) or (N, 4, 80, 80), got {dtype}"
        ))
    })?;
    let shape = arr.shape().to_vec();
    let (batched, one) = match shape.len() {
        3 => (false, &shape[..]),
        4 => (true, &shape[1..]),
        _ => (false, &[][..]),
    };
    let format = match one {
        [4, 80, 80] => ObsFormat::Cells,
        [4, 80, 10] => ObsFormat::Packed,
        _ => {
            return Err(PyValueError::new_err(format!(
                "obs has shape {shape:?}: expected (4, 80, 80) cells or (4, 80, 10) packed bits, \
                 optionally with a batch dimension first"
            )))
        }
    };
    let ro = arr.readonly();
    let owned;
    let bytes = match ro.as_slice() {
        Ok(s) => s,
        Err(_) => {
            owned = ro.as_array().iter().copied().collect::<Vec<u8>>();
            &owned[..]
        }
    };
    let stacks = bytes
        .chunks_exact(format.bytes())
        .enumerate()
        .map(|(k, chunk)| {
            format.read(chunk).map_err(|i| {
                let at = k * format.bytes() + i;
                PyValueError::new_err(format!(
                    "obs cell {at} (flat index) is {}: cells must be 0 or 1",
                    bytes[at]
                ))
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((stacks, batched))
}

/// The int8 policy (policy-core): integer Q-values, bit for bit those of
/// `firmware-sim` and the firmware.
#[pyclass(name = "Policy", module = "flappy_dqn._native")]
struct PyPolicy {
    inner: OwnedPolicy,
}

#[pymethods]
impl PyPolicy {
    /// Loads a blob file (`policy.bin`); `BlobError` with the parser's
    /// message if it is not a valid blob, `OSError` if it cannot be read.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        let bytes = std::fs::read(&path)
            .map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))?;
        OwnedPolicy::from_bytes(bytes)
            .map(|inner| PyPolicy { inner })
            .map_err(|e| BlobError::new_err(format!("{}: {e}", path.display())))
    }

    /// A blob given as bytes.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        OwnedPolicy::from_bytes(data.to_vec())
            .map(|inner| PyPolicy { inner })
            .map_err(|e| BlobError::new_err(e.to_string()))
    }

    /// Integer Q-values (Idle, Flap) as int32: shape `(2,)` for one
    /// observation, `(N, 2)` for a batch.
    fn q_values<'py>(&mut self, obs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (stacks, batched) = stacks_of(obs)?;
        let py = obs.py();
        let p = &mut self.inner;
        let q: Vec<i32> = py.detach(move || stacks.iter().flat_map(|s| p.q_values(s)).collect());
        let a = q.into_pyarray(py);
        if batched {
            Ok(a.reshape(vec![a.len() / 2, 2])?.into_any())
        } else {
            Ok(a.into_any())
        }
    }

    /// The greedy action (0 idle, 1 flap; ties to idle): an int for one
    /// observation, an int64 array for a batch.
    fn act<'py>(&mut self, obs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (stacks, batched) = stacks_of(obs)?;
        let py = obs.py();
        let p = &mut self.inner;
        let a: Vec<i64> = py.detach(move || {
            stacks
                .iter()
                .map(|s| policy_core::argmax(&p.q_values(s)) as i64)
                .collect()
        });
        if batched {
            Ok(a.into_pyarray(py).into_any())
        } else {
            Ok(a[0].into_pyobject(py)?.into_any())
        }
    }

    /// The float value of one Q-value step (`q ≈ q_values * output_scale`).
    #[getter]
    fn output_scale(&self) -> f32 {
        self.inner.output_scale()
    }

    /// The `netspec` architecture's name, or None for other layers.
    #[getter]
    fn arch(&self) -> Option<&'static str> {
        self.inner.arch_name()
    }

    /// Bytes of the blob.
    #[getter]
    fn blob_bytes(&self) -> usize {
        self.inner.blob_len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Policy(arch={}, blob_bytes={})",
            self.inner.arch_name().unwrap_or("custom"),
            self.inner.blob_len()
        )
    }
}

/// One layer as a dict: `kind` ("conv", "maxpool", "dense"), its sizes and
/// `relu` (whether a ReLU follows it).
fn layer_dict<'py>(
    py: Python<'py>,
    l: &netspec::Layer,
    relu: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match *l {
        netspec::Layer::Conv {
            in_c,
            out_c,
            k,
            stride,
            pad,
        } => {
            d.set_item("kind", "conv")?;
            d.set_item("in_c", in_c)?;
            d.set_item("out_c", out_c)?;
            d.set_item("k", k)?;
            d.set_item("stride", stride)?;
            d.set_item("pad", pad)?;
        }
        netspec::Layer::MaxPool { k } => {
            d.set_item("kind", "maxpool")?;
            d.set_item("k", k)?;
        }
        netspec::Layer::Dense { inp, out } => {
            d.set_item("kind", "dense")?;
            d.set_item("inp", inp)?;
            d.set_item("out", out)?;
        }
    }
    d.set_item("relu", relu)?;
    Ok(d)
}

/// Every `netspec` architecture: `name`, `about`, `input` (c, h, w) and
/// `layers` (see `layer_dict`), in `netspec::ALL`'s order.
#[pyfunction]
fn architectures(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for a in netspec::ALL {
        let d = PyDict::new(py);
        d.set_item("name", a.name)?;
        d.set_item("about", a.about)?;
        let i = netspec::INPUT;
        d.set_item("input", (i.c, i.h, i.w))?;
        let layers = PyList::empty(py);
        for (k, l) in a.layers.iter().enumerate() {
            layers.append(layer_dict(py, l, a.relu(k))?)?;
        }
        d.set_item("layers", layers)?;
        list.append(d)?;
    }
    Ok(list)
}

/// A recording (`docs/recording-format.md`): its first game seed and its
/// stacks as an `(S, 4, 80, 80)` uint8 array of cells.
#[pyfunction]
fn read_recording(py: Python<'_>, path: PathBuf) -> PyResult<(u64, Bound<'_, PyArrayDyn<u8>>)> {
    let bytes =
        std::fs::read(&path).map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))?;
    let rec = quant::recording::Recording::from_bytes(&bytes)
        .map_err(|e| PyValueError::new_err(format!("{}: {e:#}", path.display())))?;
    let f = ObsFormat::Cells;
    let mut cells = vec![0u8; rec.stacks.len() * f.bytes()];
    for (s, out) in rec.stacks.iter().zip(cells.chunks_exact_mut(f.bytes())) {
        f.write(s, out);
    }
    let [c, h, w] = f.shape();
    let arr = cells
        .into_pyarray(py)
        .reshape(vec![rec.stacks.len(), c, h, w])?;
    Ok((rec.seed, arr))
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEnvs>()?;
    m.add_class::<PyPolicy>()?;
    m.add("BlobError", m.py().get_type::<BlobError>())?;
    m.add_function(wrap_pyfunction!(architectures, m)?)?;
    m.add_function(wrap_pyfunction!(read_recording, m)?)?;
    m.add("VALIDATION_SEED", seeds::VALIDATION)?;
    m.add("PERIODIC_EVAL_SEED", seeds::PERIODIC_EVAL)?;
    m.add("SELECTION_SEED", seeds::SELECTION)?;
    m.add("TEST_SEED", seeds::TEST)?;
    m.add("TEST_LEN", seeds::TEST_LEN)?;
    m.add("SCREEN_WIDTH", flappy::render::WIDTH)?;
    m.add("SCREEN_HEIGHT", flappy::render::HEIGHT)?;
    Ok(())
}
