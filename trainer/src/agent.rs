//! The DQN learner: online and target networks, a hand-written Adam (so its
//! moments can be checkpointed), the Double-DQN n-step target, Huber loss and
//! global gradient-norm clipping.

use crate::config::Config;
use crate::net::{to_input, unpack_frames, Arch, QNetwork, INPUT_LEN};
use crate::replay::{Replay, Sample};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use tch::{Device, Kind, Reduction, Tensor};

/// Adam over a var store's trainable variables, with its state in plain tensors.
pub struct Adam {
    /// First moments, by variable name.
    pub m: BTreeMap<String, Tensor>,
    /// Second moments, by variable name.
    pub v: BTreeMap<String, Tensor>,
    /// Steps taken (for bias correction).
    pub t: u64,
}

impl Adam {
    /// Zero moments for every variable of `net`.
    pub fn new(net: &QNetwork) -> Adam {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, t) in net.vs.variables() {
            m.insert(name.clone(), t.zeros_like());
            v.insert(name, t.zeros_like());
        }
        Adam { m, v, t: 0 }
    }

    /// One Adam step on `loss`, a scalar computed from `net`, with `(lr,
    /// eps, clip)` ([`Adam::step`]): `net`'s gradients zeroed, `loss`
    /// backpropagated. Returns the loss; a loss that is not finite is an
    /// error and changes nothing.
    pub fn minimize(
        &mut self,
        net: &QNetwork,
        loss: &Tensor,
        (lr, eps, clip): (f64, f64, f64),
    ) -> Result<f64> {
        let lv = loss.double_value(&[]);
        if !lv.is_finite() {
            bail!("the loss is {lv}");
        }
        for mut p in net.vs.trainable_variables() {
            p.zero_grad();
        }
        loss.backward();
        self.step(net, lr, eps, clip)?;
        Ok(lv)
    }

    /// One Adam step on `net` from its current gradients, after clipping their
    /// global norm to `clip`. Returns the norm before clipping.
    pub fn step(&mut self, net: &QNetwork, lr: f64, eps: f64, clip: f64) -> Result<f64> {
        let (b1, b2) = (0.9f64, 0.999f64);
        let vars = net.vs.variables();
        tch::no_grad(|| {
            // By name: `vars` is a HashMap, whose order differs from one
            // process to the next, and the norm's float sum must not.
            let mut grads: Vec<(&String, Tensor)> =
                vars.iter().map(|(n, p)| (n, p.grad())).collect();
            grads.sort_by(|a, b| a.0.cmp(b.0));
            let norm = grads
                .iter()
                .filter(|(_, g)| g.defined())
                .map(|(_, g)| g.square().sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, net.device())), |a, b| a + b)
                .sqrt()
                .double_value(&[]);
            let scale = if norm > clip {
                clip / (norm + 1e-6)
            } else {
                1.0
            };
            self.t += 1;
            let bc1 = 1.0 - b1.powi(self.t as i32);
            let bc2 = 1.0 - b2.powi(self.t as i32);
            for (name, g) in grads {
                if !g.defined() {
                    continue;
                }
                let g = g * scale;
                let m = self.m.get_mut(name).expect("moment");
                let nm = &*m * b1 + &g * (1.0 - b1);
                m.copy_(&nm);
                let v = self.v.get_mut(name).expect("moment");
                let nv = &*v * b2 + g.square() * (1.0 - b2);
                v.copy_(&nv);
                let upd = (&nm / bc1) / ((&nv / bc2).sqrt() + eps) * lr;
                let mut p = vars[name].shallow_clone();
                // In place; the returned alias of `p` is not needed.
                let _alias = p
                    .f_sub_(&upd)
                    .with_context(|| format!("Adam step on `{name}`"))?;
            }
            Ok(norm)
        })
    }
}

/// The learner's state.
pub struct Learner {
    /// The network being trained.
    pub online: QNetwork,
    /// The slowly moving target network.
    pub target: QNetwork,
    /// The optimizer.
    pub adam: Adam,
    /// An exponential moving average of the online weights (`policy_ema` > 0):
    /// the policy that is evaluated, selected and exported instead of the
    /// online network, which moves with every update.
    pub ema: Option<QNetwork>,
    /// Gradient updates done.
    pub updates: u64,
    /// |TD error| of each sample of the last weighted update (prioritized replay).
    pub last_td_abs: Vec<f32>,
    host_s: Vec<f32>,
    host_n: Vec<f32>,
}

/// A batch of n-step transitions, on the device.
pub struct Batch {
    /// States `[B, 4, 80, 80]`.
    pub s: Tensor,
    /// Actions `[B]` (int64).
    pub a: Tensor,
    /// n-step discounted returns `[B]`.
    pub ret: Tensor,
    /// `gamma^steps` where the bootstrap applies, 0 where the episode ended `[B]`.
    pub disc: Tensor,
    /// Bootstrap states `[B, 4, 80, 80]`.
    pub next: Tensor,
    /// Importance-sampling weights `[B]` of prioritized replay (`None`: uniform).
    pub weights: Option<Tensor>,
}

impl Learner {
    /// Fresh networks (target = online) for `arch` on `device`.
    pub fn new(arch: Arch, device: Device) -> Result<Learner> {
        let online = QNetwork::new(arch, device);
        let mut target = QNetwork::new(arch, device);
        target.copy_from(&online)?;
        let adam = Adam::new(&online);
        Ok(Learner {
            online,
            target,
            adam,
            ema: None,
            updates: 0,
            last_td_abs: Vec::new(),
            host_s: Vec::new(),
            host_n: Vec::new(),
        })
    }

    /// Keeps an exponential moving average of the online weights from now
    /// on (see [`Learner::ema`]), starting from the current weights.
    pub fn with_ema(mut self) -> Result<Learner> {
        let mut ema = QNetwork::new(self.online.arch, self.online.device());
        ema.copy_from(&self.online)?;
        self.ema = Some(ema);
        Ok(self)
    }

    /// The network to evaluate, select and export: the moving average when
    /// there is one, else the online network.
    pub fn policy(&self) -> &QNetwork {
        self.ema.as_ref().unwrap_or(&self.online)
    }

    /// Assembles the sampled transitions on the host (one contiguous buffer per
    /// tensor) and moves each to the device once. `weights`: prioritized
    /// replay's importance-sampling weights, one per sample.
    pub fn make_batch(
        &mut self,
        replay: &Replay,
        samples: &[Sample],
        gamma: f64,
        weights: Option<&[f32]>,
    ) -> Batch {
        let b = samples.len();
        self.host_s.resize(b * INPUT_LEN, 0.0);
        self.host_n.resize(b * INPUT_LEN, 0.0);
        for (i, t) in samples.iter().enumerate() {
            let r = i * INPUT_LEN..(i + 1) * INPUT_LEN;
            unpack_frames(replay.stack(t.env, t.index), &mut self.host_s[r.clone()]);
            unpack_frames(replay.stack(t.env, t.next_index), &mut self.host_n[r]);
        }
        let dev = self.online.device();
        let a: Vec<i64> = samples.iter().map(|t| t.action as i64).collect();
        let ret: Vec<f32> = samples.iter().map(|t| t.ret).collect();
        let disc: Vec<f32> = samples
            .iter()
            .map(|t| {
                if t.done {
                    0.0
                } else {
                    gamma.powi(t.steps as i32) as f32
                }
            })
            .collect();
        Batch {
            s: to_input(&self.host_s, b, dev),
            a: Tensor::from_slice(&a).to_device(dev),
            ret: Tensor::from_slice(&ret).to_device(dev),
            disc: Tensor::from_slice(&disc).to_device(dev),
            next: to_input(&self.host_n, b, dev),
            weights: weights.map(|w| Tensor::from_slice(w).to_device(dev)),
        }
    }

    /// One gradient step on `batch` with learning rate `lr`; returns the loss.
    pub fn update(&mut self, batch: &Batch, cfg: &Config, lr: f64) -> Result<f64> {
        let y = tch::no_grad(|| td_target(&self.online, &self.target, batch, cfg.double_dqn));
        let q = self
            .online
            .forward(&batch.s)
            .gather(1, &batch.a.unsqueeze(1), false)
            .squeeze_dim(1);
        let loss = match &batch.weights {
            None => q.huber_loss(&y, Reduction::Mean, cfg.huber_delta),
            Some(w) => {
                let td: Vec<f32> = Vec::try_from((&q - &y).detach().abs().to_device(Device::Cpu))?;
                self.last_td_abs = td;
                (q.huber_loss(&y, Reduction::None, cfg.huber_delta) * w).mean(Kind::Float)
            }
        };
        let step = (lr, cfg.adam_eps, cfg.grad_clip);
        let lv = self
            .adam
            .minimize(&self.online, &loss, step)
            .with_context(|| {
                format!(
                    "at update {} (diverged); the last good checkpoint is kept",
                    self.updates
                )
            })?;
        self.updates += 1;
        if let Some(ema) = &mut self.ema {
            ema.polyak_from(&self.online, cfg.policy_ema);
        }
        if cfg.tau > 0.0 {
            self.target.polyak_from(&self.online, cfg.tau);
        } else if self.updates.is_multiple_of(cfg.target_update) {
            self.target.copy_from(&self.online)?;
        }
        Ok(lv)
    }
}

/// The n-step target `ret + disc * Q_target(next, a*)`, with `a*` the online
/// network's argmax (Double DQN) or the target's own max.
pub fn td_target(online: &QNetwork, target: &QNetwork, b: &Batch, double: bool) -> Tensor {
    let qt = target.forward(&b.next);
    let next_v = if double {
        let a_star = online.forward(&b.next).argmax(1, true);
        qt.gather(1, &a_star, false).squeeze_dim(1)
    } else {
        qt.amax(1, false)
    };
    &b.ret + &b.disc * next_v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random batch (seed 11); callers hold [`crate::torch_seed_lock`].
    fn batch(n: i64, disc: Vec<f32>) -> Batch {
        tch::manual_seed(11);
        let x = || {
            Tensor::rand([n, 4, 80, 80], (Kind::Float, Device::Cpu))
                .ge(0.8)
                .to_kind(Kind::Float)
        };
        Batch {
            s: x(),
            a: Tensor::from_slice(&vec![1i64; n as usize]),
            ret: Tensor::from_slice(&(0..n).map(|i| i as f32 * 0.1).collect::<Vec<_>>()),
            disc: Tensor::from_slice(&disc),
            next: x(),
            weights: None,
        }
    }

    fn vals(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn td_target_terminal_plain_and_double() {
        let _seed = crate::torch_seed_lock();
        tch::manual_seed(3);
        let online = QNetwork::new(netspec::SMALL, Device::Cpu);
        tch::manual_seed(4);
        let target = QNetwork::new(netspec::SMALL, Device::Cpu);
        let n = 64;
        let disc: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { 0.0 } else { 0.97 })
            .collect();
        let b = batch(n, disc.clone());
        let qo = vals(&tch::no_grad(|| online.forward(&b.next)));
        let qt = vals(&tch::no_grad(|| target.forward(&b.next)));
        let dbl = vals(&tch::no_grad(|| td_target(&online, &target, &b, true)));
        let plain = vals(&tch::no_grad(|| td_target(&online, &target, &b, false)));
        let mut differ = 0;
        for i in 0..n as usize {
            let ret = i as f32 * 0.1;
            let a_star = usize::from(qo[2 * i + 1] > qo[2 * i]);
            let want_double = ret + disc[i] * qt[2 * i + a_star];
            let want_plain = ret + disc[i] * qt[2 * i].max(qt[2 * i + 1]);
            assert!(
                (dbl[i] - want_double).abs() < 1e-5,
                "double {i}: {} vs {want_double}",
                dbl[i]
            );
            assert!(
                (plain[i] - want_plain).abs() < 1e-5,
                "plain {i}: {} vs {want_plain}",
                plain[i]
            );
            if disc[i] == 0.0 {
                assert_eq!(dbl[i], ret, "a terminal transition does not bootstrap");
            }
            differ += usize::from((dbl[i] - plain[i]).abs() > 1e-7);
        }
        assert!(
            differ > 0,
            "double and plain targets coincide on every sample: the test would not see a mix-up"
        );
    }

    #[test]
    fn the_moving_average_trails_the_online_network() {
        let cfg = Config {
            lr: 1e-3,
            policy_ema: 0.1,
            ..Config::default()
        };
        let mut l = Learner::new(netspec::SMALL, Device::Cpu)
            .unwrap()
            .with_ema()
            .unwrap();
        // The average follows ema <- (1 - tau) ema + tau online after every update.
        let mut want = vals(&l.online.vs.variables()["l4.bias"]);
        let start = want.clone();
        let b = batch(16, vec![0.0; 16]);
        for _ in 0..5 {
            l.update(&b, &cfg, cfg.lr).unwrap();
            let online = vals(&l.online.vs.variables()["l4.bias"]);
            for (w, o) in want.iter_mut().zip(&online) {
                *w = (1.0 - 0.1) * *w + 0.1 * o;
            }
        }
        let online = vals(&l.online.vs.variables()["l4.bias"]);
        let ema = vals(&l.policy().vs.variables()["l4.bias"]);
        assert_ne!(online, start, "the online network moved");
        assert_ne!(ema, online, "the policy is the average, not the online net");
        for (e, w) in ema.iter().zip(&want) {
            assert!((e - w).abs() < 1e-6, "ema {e} vs recurrence {w}");
        }
    }

    #[test]
    fn an_update_moves_the_prediction_toward_the_target() {
        // The seed's PyTorch port never backpropagated into the network: check we do.
        let _seed = crate::torch_seed_lock();
        let mut l = Learner::new(netspec::SMALL, Device::Cpu).unwrap();
        let b = batch(16, vec![0.0; 16]);
        let cfg = Config {
            lr: 1e-3,
            ..Config::default()
        };
        let loss0 = l.update(&b, &cfg, cfg.lr).unwrap();
        let mut loss = loss0;
        for _ in 0..20 {
            loss = l.update(&b, &cfg, cfg.lr).unwrap();
        }
        assert!(loss < loss0 * 0.5, "loss {loss0} -> {loss}");
        assert_eq!(l.updates, 21);
        assert_eq!(l.adam.t, 21);
    }
}
