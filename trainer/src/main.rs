fn main() {
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0]).sum(tch::Kind::Float);
    println!("{t} cuda={}", tch::Cuda::is_available());
}
