use super::*;

#[test]
fn line_quotes_only_what_needs_it() {
    let c = Cmd::new("pvs")
        .args(["--config", "devices { a=0 }", "/dev/vdb", "|", "+100%FREE"])
        .arg("it's");
    assert_eq!(
        c.line(),
        r"pvs --config 'devices { a=0 }' /dev/vdb '|' +100%FREE 'it'\''s'"
    );
}

#[test]
fn system_runner_captures_code_and_both_streams() {
    let r = SystemRunner::new();
    let out = r
        .run(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn system_runner_streams_lines_and_closes_stdin() {
    let r = SystemRunner::new();
    let mut seen = Vec::new();
    // `read` gets end-of-file at once: a prompt is declined, never left hanging.
    let out = r
        .run_streaming(
            &Cmd::new("sh").args(["-c", "echo a; read x || echo eof; echo b"]),
            &mut |l| seen.push(l.to_owned()),
        )
        .unwrap();
    assert!(out.success());
    assert_eq!(seen, ["a", "eof", "b"]);
}

#[test]
fn system_runner_reports_missing_program_and_timeout() {
    let r = SystemRunner::with_timeout(Duration::from_millis(200));
    let e = r.run(&Cmd::new("omtd-no-such-program")).unwrap_err();
    assert!(matches!(e, CommandError::NotFound { .. }), "{e}");
    let e = r.run(&Cmd::new("sleep").arg("5")).unwrap_err();
    assert!(matches!(e, CommandError::TimedOut { .. }), "{e}");
}

#[test]
fn a_daemon_holding_the_pipe_does_not_hang_the_runner() {
    let r = SystemRunner::new();
    let t = Instant::now();
    let out = r
        .run(&Cmd::new("sh").args(["-c", "sleep 5 & echo started"]))
        .unwrap();
    assert_eq!(out.stdout, "started\n");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn non_utf8_output_is_kept_lossily() {
    let out = SystemRunner::new()
        .run(&Cmd::new("printf").arg("a\\377b\\n"))
        .unwrap();
    assert_eq!(out.stdout, "a\u{FFFD}b\n");
}

#[test]
fn temp_file_capture_keeps_both_streams_and_ignores_a_daemon() {
    let r = SystemRunner::for_drivers();
    let t = Instant::now();
    let out = r
        .run(&Cmd::new("sh").args(["-c", "sleep 5 & echo hi; echo oops >&2; exit 3"]))
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.stderr, "oops\n");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn temp_file_capture_times_out() {
    let r = SystemRunner {
        timeout: Some(Duration::from_millis(200)),
        capture: Capture::TempFiles,
    };
    let e = r.run(&Cmd::new("sleep").arg("5")).unwrap_err();
    assert!(matches!(e, CommandError::TimedOut { .. }), "{e}");
}

#[test]
fn recording_runner_repeats_last_answer_and_records() {
    let r = RecordingRunner::new();
    r.on("pvs", Output::ok("1")).on("pvs", Output::ok("2"));
    let c = Cmd::new("pvs");
    assert_eq!(r.run(&c).unwrap().stdout, "1");
    assert_eq!(r.run(&c).unwrap().stdout, "2");
    assert_eq!(r.run(&c).unwrap().stdout, "2");
    assert!(matches!(
        r.run(&Cmd::new("vgs")),
        Err(CommandError::Unscripted { .. })
    ));
    assert_eq!(r.lines(), ["pvs", "pvs", "pvs", "vgs"]);
}
