use flappy::{raster, Action, Game};

#[test]
fn smoke() {
    let mut g = Game::new(1);
    let mut n = 0;
    loop {
        n += 1;
        let s = g.step(Action::Idle).unwrap();
        if s.terminal {
            break;
        }
    }
    println!("no-flap crash after {n}");
    let mut g = Game::new(3);
    for i in 0..20000u32 {
        let a = flappy::agent::heuristic_action(&g);
        let s = g.step(a).unwrap();
        if s.terminal {
            println!("crash at {i} score {:?}", s.final_score);
        }
        if i % 97 == 0 {
            assert_eq!(
                g.frame(),
                raster::reference::observe(&g.state()),
                "{:?}",
                g.state()
            );
        }
    }
    println!("score {}", g.score());
}
