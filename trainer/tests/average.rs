//! `checkpoint::average` (`trainer average`): every variable of the average
//! is the mean of the networks' variables, one network averages to itself,
//! and networks of two architectures are refused.

use std::path::PathBuf;
use tch::{Device, Tensor};
use trainer::checkpoint::average;
use trainer::net::QNetwork;

fn saved(arch: netspec::Arch, seed: i64, dir: &std::path::Path) -> (QNetwork, PathBuf) {
    tch::manual_seed(seed);
    let net = QNetwork::new(arch, Device::Cpu);
    let path = dir.join(format!("{}-{seed}.safetensors", arch.name));
    net.vs.save(&path).unwrap();
    (net, path)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn the_average_is_the_mean_of_every_variable() {
    let dir = std::env::temp_dir().join(format!("average-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, pa) = saved(netspec::COMPACT, 1, &dir);
    let (b, pb) = saved(netspec::COMPACT, 2, &dir);
    let (c, pc) = saved(netspec::COMPACT, 3, &dir);
    let avg = average(&[pa.clone(), pb.clone(), pc.clone()], Device::Cpu).unwrap();
    let (va, vb, vc) = (a.vs.variables(), b.vs.variables(), c.vs.variables());
    let vavg = avg.vs.variables();
    assert_eq!(vavg.len(), va.len());
    let mut moved = 0;
    for (name, t) in &vavg {
        let want = (&va[name] + &vb[name] + &vc[name]) / 3.0;
        assert!(max_diff(t, &want) < 1e-6, "{name}");
        moved += usize::from(max_diff(t, &va[name]) > 1e-4);
    }
    // Biases may start at zero in every network; the weights do not.
    assert!(moved >= vavg.len() / 2, "the average is the first network");
    let one = average(std::slice::from_ref(&pa), Device::Cpu).unwrap();
    for (name, t) in &one.vs.variables() {
        assert_eq!(max_diff(t, &va[name]), 0.0, "{name}");
    }
    let (_, pt) = saved(netspec::TINY, 4, &dir);
    match average(&[pa, pt], Device::Cpu) {
        Err(e) => assert!(e.to_string().contains("architectures"), "{e}"),
        Ok(_) => panic!("a compact and a tiny network averaged"),
    }
    assert!(average(&[], Device::Cpu).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
