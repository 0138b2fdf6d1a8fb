//! Where libtorch computes: CUDA when it sees a GPU, else the CPU, and its
//! CPU thread count.

use tch::Device;

/// The device to train on: CUDA when libtorch sees a GPU, else the CPU.
pub fn pick_device() -> Device {
    load_cuda_backend();
    if tch::Cuda::is_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// Sets libtorch's CPU threads to `threads` (0: leaves its default, all cores).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// libtorch registers its CUDA backend when `libtorch_cuda.so` is loaded, but
/// the linker drops that library from the binary (no symbol of it is used
/// directly), so CUDA would never be seen. Load it by hand, found through
/// `LD_LIBRARY_PATH` or the binary's runpath; where it is absent (a CPU-only
/// libtorch) nothing happens and training runs on the CPU.
fn load_cuda_backend() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a constant NUL-terminated name; the handle is kept (never
        // closed) for the life of the process, as libtorch expects.
        let _handle = unsafe {
            libc::dlopen(
                c"libtorch_cuda.so".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_GLOBAL,
            )
        };
    });
}
