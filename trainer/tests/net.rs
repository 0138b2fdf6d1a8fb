//! The network's max-pool through the channels-last layout gives libtorch's
//! default max-pool bit for bit, values and gradients, ties included.

use tch::{Kind, Tensor};
use trainer::net::max_pool;

/// Pool outputs and input gradients of `pool` on `x` with output gradient `g`.
fn run(pool: impl Fn(&Tensor) -> Tensor, x: &Tensor, g: &Tensor) -> (Tensor, Tensor) {
    let x = x.detach().copy().set_requires_grad(true);
    let y = pool(&x);
    // d(sum(y * g))/dy is g exactly: the pool's backward of g.
    (&y * g).sum(Kind::Float).backward();
    (y.detach(), x.grad())
}

#[test]
fn pooling_through_channels_last_is_the_default_pool_bit_for_bit() {
    tch::manual_seed(7);
    for n in [1i64, 2, 32] {
        // Post-ReLU values on a coarse grid, so that many patches hold ties
        // (as binary frames make them), and whole zero regions.
        let x = (Tensor::randn([n, 16, 20, 20], (Kind::Float, tch::Device::Cpu)) * 4.0)
            .round()
            .relu()
            / 4.0;
        let g = Tensor::randn([n, 16, 10, 10], (Kind::Float, tch::Device::Cpu));
        let (y0, g0) = run(|x| x.max_pool2d_default(2), &x, &g);
        let (y1, g1) = run(|x| max_pool(x, 2), &x, &g);
        assert!(
            y1.is_contiguous(),
            "batch {n}: the output is in the default layout"
        );
        assert!(y0.equal(&y1), "batch {n}: values differ");
        assert!(g0.equal(&g1), "batch {n}: gradients differ");
        // The ties are there: some patches have two or more maxima.
        let patches = x
            .unfold(2, 2, 2)
            .unfold(3, 2, 2)
            .reshape([n, 16, 10, 10, 4]);
        let maxima = patches
            .eq_tensor(&y0.unsqueeze(-1))
            .sum_dim_intlist(-1, false, Kind::Int64);
        assert!(
            maxima.gt(1).any().int64_value(&[]) == 1,
            "batch {n}: no tie to test"
        );
    }
}
