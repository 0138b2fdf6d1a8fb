//! Human rendering: the RGB frame shows exactly the game's scene (plus the
//! score), PNG and GIF files decode back to it, and errors are errors.

mod common;
use flappy::raster::reference;
use flappy::render::{self, GifOptions, GifRecorder, HEIGHT, PALETTE, RGB_LEN, WIDTH};
use flappy::{agent, Game, PipePair, State};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flappy-render-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Rows the score digits may use (top row 51, 7 font rows of 4 px, 2 px shadow).
const SCORE_ROWS: std::ops::Range<usize> = 51..51 + 28 + 2;

fn pixel(rgb: &[u8], x: usize, y: usize) -> [u8; 3] {
    let i = (y * WIDTH + x) * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn states() -> Vec<State> {
    let mut v = Vec::new();
    common::play(21, 2000, 301, |k, g| {
        if k % 37 == 0 {
            v.push(g.state());
        }
    });
    let mut s = State::fresh(0, 7, 0).unwrap();
    s.player_y = 0;
    s.anim_index = 2;
    s.pipes[0] = PipePair { x: -40, gap_y: 100 };
    s.pipes[1] = PipePair { x: 260, gap_y: 170 };
    v.push(s);
    v
}

#[test]
fn non_black_pixels_are_exactly_the_scene_outside_the_score() {
    for s in states() {
        let rgb = render::render_rgb(&s);
        assert_eq!(rgb.len(), RGB_LEN);
        let scene = reference::rasterize(&s);
        for y in 0..HEIGHT {
            if SCORE_ROWS.contains(&y) {
                continue;
            }
            for x in 0..WIDTH {
                let lit = pixel(&rgb, x, y) != [0, 0, 0];
                assert_eq!(lit, scene[y * WIDTH + x], "({x}, {y}) in {s:?}");
            }
        }
    }
}

#[test]
fn ground_band_starts_at_row_404() {
    let rgb = render::render_rgb(&Game::new(0).state());
    for x in 0..WIDTH {
        assert_eq!(pixel(&rgb, x, 403), [0, 0, 0]);
        for y in 404..HEIGHT {
            assert_ne!(pixel(&rgb, x, y), [0, 0, 0]);
        }
    }
}

#[test]
fn score_is_drawn_and_changes_with_the_score() {
    let mut s = Game::new(0).state();
    let white = |rgb: &[u8]| {
        SCORE_ROWS
            .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .filter(|&(x, y)| pixel(rgb, x, y) == [255, 255, 255])
            .count()
    };
    let zero = render::render_rgb(&s);
    s.score = 1000;
    let thousand = render::render_rgb(&s);
    s.score = u32::MAX;
    let max = render::render_rgb(&s);
    assert!(white(&zero) > 100);
    assert!(white(&thousand) > white(&zero));
    assert!(white(&max) > white(&thousand));
    assert_ne!(zero, thousand);
}

#[test]
fn indexed_and_rgb_agree_and_use_the_palette() {
    let s = Game::new(4).state();
    let idx = render::render_indexed(&s);
    assert_eq!(idx.len(), WIDTH * HEIGHT);
    assert!(idx.iter().all(|&i| (i as usize) < PALETTE.len()));
    assert_eq!(render::indexed_to_rgb(&idx), render::render_rgb(&s));
    let half = render::downscale2(&idx);
    assert_eq!(half.len(), WIDTH * HEIGHT / 4);
    assert_eq!(half[10 * (WIDTH / 2) + 7], idx[20 * WIDTH + 14]);
}

#[test]
fn png_round_trip() {
    let s = Game::new(8).state();
    let path = scratch("frame.png");
    render::save_png(&path, &s).unwrap();
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (288, 512));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(&buf[..info.buffer_size()], &render::render_rgb(&s)[..]);
}

#[test]
fn gif_records_every_stride_th_state_up_to_the_limit() {
    let mut g = Game::new(2);
    let mut states = vec![g.state()];
    for _ in 0..40 {
        g.step(agent::heuristic_action(&g)).unwrap();
        states.push(g.state());
    }
    let path = scratch("run.gif");
    let opts = GifOptions {
        stride: 4,
        half: true,
        max_frames: 8,
        delay_cs: 0,
    };
    let mut rec = GifRecorder::create(&path, opts).unwrap();
    let recorded: Vec<bool> = states.iter().map(|s| rec.push(s).unwrap()).collect();
    assert!(rec.is_full());
    assert_eq!(rec.finish().unwrap(), 8);
    // States 0, 4, ..., 28 (8 frames), then the limit.
    let expect: Vec<bool> = (0..states.len()).map(|i| i % 4 == 0 && i < 32).collect();
    assert_eq!(recorded, expect);

    let mut dec = gif::DecodeOptions::new();
    dec.set_color_output(gif::ColorOutput::Indexed);
    let mut d = dec.read_info(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!((d.width(), d.height()), (144, 256));
    let mut i = 0;
    while let Some(f) = d.read_next_frame().unwrap() {
        let want = render::downscale2(&render::render_indexed(&states[i * 4]));
        assert_eq!(&f.buffer[..], &want[..], "frame {i}");
        assert!(f.delay >= 2);
        i += 1;
    }
    assert_eq!(i, 8);
}

#[test]
fn full_size_gif_in_memory() {
    let mut buf = Vec::new();
    let opts = GifOptions {
        stride: 1,
        half: false,
        max_frames: 10,
        delay_cs: 5,
    };
    let mut rec = GifRecorder::new(&mut buf, opts).unwrap();
    let s = Game::new(0).state();
    rec.push(&s).unwrap();
    rec.push(&s).unwrap();
    assert_eq!(rec.finish().unwrap(), 2);
    let mut dec = gif::DecodeOptions::new();
    dec.set_color_output(gif::ColorOutput::RGBA);
    let mut d = dec.read_info(&buf[..]).unwrap();
    assert_eq!((d.width(), d.height()), (288, 512));
    let f = d.read_next_frame().unwrap().unwrap();
    assert_eq!(f.delay, 5);
    let rgb: Vec<u8> = f
        .buffer
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    assert_eq!(rgb, render::render_rgb(&s));
}

#[test]
fn unwritable_paths_are_errors_not_panics() {
    let s = Game::new(0).state();
    let bad = "/nonexistent-dir-for-flappy/x";
    assert!(render::save_png(format!("{bad}.png"), &s).is_err());
    assert!(GifRecorder::create(format!("{bad}.gif"), GifOptions::default()).is_err());
    // A writer that fails.
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("broken"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    assert!(render::write_png(Broken, &s).is_err());
    assert!(GifRecorder::new(Broken, GifOptions::default()).is_err());
}
