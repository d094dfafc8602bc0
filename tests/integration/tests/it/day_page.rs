//! `autopilot day` in a real browser: headless Chromium renders the page of a realistic day
//! while every request it could make goes to a proxy the test owns, which must see none. The
//! screenshot is kept at `target/day-page.png` for a person to look at.

use std::collections::HashMap;
use std::fs;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use presence_autopilot::decide::ScheduledSpan;
use presence_autopilot::model::{ActivityCategory, PresenceDefinitionId, UserId};
use presence_autopilot::operator::timeline::{DayPage, render_day};
use presence_autopilot::state::{AuditEntry, AuditRecord, DecisionKind, PresenceRef, TriggerId};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);
const DEFERRAL: &str = "the agent is Interacting; looking again at 10:05:00 UTC";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Headless Chromium with its own background traffic off, so that anything the proxy sees
/// came from the page. Measured on Chromium 148: without the last two lines a fresh profile
/// asks clients2.google.com (network time), www.google.com (search preconnects and the AI
/// Mode eligibility check) and accounts.google.com (the signed-in accounts check, which no
/// flag turns off: its URL is pointed at port 1, a port Chromium refuses to connect to).
const QUIET_BROWSER: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-bypass-list=<-loopback>",
    "--window-size=1400,900",
    "--disable-features=NetworkTimeServiceQuerying,PreconnectToSearch,AimEnabled",
    "--gaia-url=http://127.0.0.1:1",
];

const AVAILABLE: &str = "6a3af858-942f-489d-9700-5f9bcdcdae9b";
const MEETING: &str = "c5e4a6d2-0b7e-4f6b-9d1e-3f0a2b7c8d91";
const BUSY: &str = "31fe3bac-dea6-44b7-bed7-47f91660a1a0";

#[test]
fn chromium_draws_the_day_page_without_a_single_request() {
    let (image, dom, requests) = browse("day-page", render(&day()));
    assert!(
        image.len() > 8 * 1024,
        "a near-empty picture: {} bytes",
        image.len()
    );
    assert!(dom.stdout.contains("<svg"), "no SVG in the parsed page");
    assert!(
        dom.stdout.contains(DEFERRAL),
        "the deferral's reason is not in the page"
    );
    assert!(
        requests.is_empty(),
        "network requests were made: {requests:#?}"
    );
}

/// `page` drawn by headless Chromium, every request it tries sent to a proxy the test owns: the
/// screenshot (a PNG, kept at `target/<name>.png` for a person to look at), the parsed DOM, and
/// the requests the proxy saw.
fn browse(name: &str, page: String) -> (Vec<u8>, Run, Vec<String>) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (make setup does)"
    );
    assert!(
        !page.contains("http:") && !page.contains("https:"),
        "a URL in the page"
    );
    let dir = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&dir).expect("temp dir");
    let html = dir.join("page.html");
    fs::write(&html, page).expect("write the page");
    let url = format!("file://{}", html.display());
    let proxy = Proxy::start();
    let png = dir.join("page.png");
    let shot = chromium(
        &dir,
        "shot",
        &proxy,
        &[&format!("--screenshot={}", png.display()), &url],
    );
    let dom = chromium(&dir, "dom", &proxy, &["--dump-dom", &url]);
    assert!(
        shot.status.success(),
        "screenshot: {}\n{}",
        shot.status,
        shot.stderr_tail
    );
    let image = fs::read(&png).expect("chromium wrote the screenshot");
    assert!(image.starts_with(PNG_SIGNATURE), "not a PNG");
    assert!(
        dom.status.success(),
        "dump-dom: {}\n{}",
        dom.status,
        dom.stderr_tail
    );
    let requests = proxy.stop();
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/{name}.png"));
    fs::create_dir_all(kept.parent().expect("target dir")).expect("target dir");
    fs::copy(&png, &kept).expect("copy the screenshot");
    println!("screenshot: {}", kept.display());
    let _ = fs::remove_dir_all(&dir);
    (image, dom, requests)
}

/// What a Chromium run left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr_tail: String,
}

/// Runs Chromium on a fresh profile, every request sent to `proxy` (loopback included), and
/// kills its whole process group if it takes longer than `BROWSER_TIMEOUT`.
fn chromium(dir: &Path, name: &str, proxy: &Proxy, extra: &[&str]) -> Run {
    let (out, err) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let mut child = Command::new(CHROMIUM)
        .args(QUIET_BROWSER)
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("profile-{name}")).display()
        ))
        .arg(format!("--proxy-server=http://127.0.0.1:{}", proxy.port))
        .args(extra)
        .stdin(Stdio::null())
        // Files, not pipes: a full pipe would stall the browser while we wait for it.
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            // The group holds the browser's renderer and GPU children too.
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!("chromium ({name}) did not finish within {BROWSER_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    let tail = stderr
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev();
    Run {
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr_tail: tail.collect::<Vec<_>>().join("\n"),
    }
}

/// A listener that stands in for a proxy: it accepts every connection, notes its first line
/// (`CONNECT host:443 …`, `GET http://…`) and closes it.
struct Proxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("proxy address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (seen, stop) = (Arc::clone(&requests), Arc::clone(&stopping));
        let thread = thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let line = first_line(stream);
                        seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            requests,
            stopping,
            thread: Some(thread),
        }
    }

    /// Stops watching (after one last look) and gives the requests that came.
    fn stop(mut self) -> Vec<String> {
        self.halt();
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn halt(&mut self) {
        thread::sleep(Duration::from_millis(50));
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.halt();
    }
}

fn first_line(mut stream: TcpStream) -> String {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buffer = [0u8; 512];
    let read = stream.read(&mut buffer).unwrap_or(0);
    let text = String::from_utf8_lossy(&buffer[..read]);
    text.lines().next().unwrap_or("(nothing sent)").to_owned()
}

fn render(records: &[AuditRecord]) -> String {
    let names = HashMap::from([
        (AVAILABLE.to_owned(), "Available".to_owned()),
        (MEETING.to_owned(), "Meeting".to_owned()),
        (BUSY.to_owned(), "Busy".to_owned()),
    ]);
    render_day(&DayPage {
        user: &user(),
        label: Some("ada.lovelace@example.com"),
        date: NaiveDate::from_ymd_opt(2026, 6, 16).expect("date"),
        zone: "Europe/London".parse().expect("zone"),
        records,
        schedule: &schedule(),
        presence_names: &names,
    })
}

/// London local time on 2026-06-16 (British Summer Time).
fn local(hm: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-06-16T{hm}:00+01:00"))
        .expect("time")
        .with_timezone(&Utc)
}

fn presence(id: &str, message: &str) -> Option<PresenceRef> {
    let definition_id = PresenceDefinitionId::parse(id).expect("presence id");
    Some(PresenceRef {
        definition_id,
        message: message.to_owned(),
    })
}

/// A day as the transition service records it: a meeting applied and restored, a deferral
/// while on a call, an agent who took the presence back, a focus block with a meeting inside
/// it, a start the schedule refused, and a delivery record (which the page leaves off).
fn day() -> Vec<AuditRecord> {
    use DecisionKind::{Applied, Deferred, DeliveryDelivered, Kept, Restored, Skipped};
    let (standup, review) = ("AAMkAGI2TG93AAA=standup", "AAMkAGI2TG93AAA=review");
    let (sync, late, focus) = ("AAMkAGI2TG93AAA=sync", "AAMkAGI2TG93AAA=late", "focus-1400");
    let mut log = Log::default();
    log.event(standup, "meeting", "10:00", "10:30");
    log.event(review, "meeting", "11:00", "11:45");
    log.event(focus, "focus", "14:00", "15:30");
    log.event(sync, "meeting", "15:00", "15:15");
    log.event(late, "meeting", "16:00", "16:30");
    let in_meeting = "In a meeting until 10:30";
    log.add(Applied, standup, "10:00", "started")
        .moved(AVAILABLE, MEETING, in_meeting);
    log.add(Restored, standup, "10:30", "ended")
        .moved(MEETING, AVAILABLE, "");
    log.add(Deferred, review, "11:00", "started")
        .why(DEFERRAL)
        .wait("11:05");
    log.add(Applied, review, "11:05", "reevaluate")
        .moved(AVAILABLE, MEETING, "");
    log.add(DeliveryDelivered, review, "11:05", "")
        .why("sent to https://hooks.example.com");
    log.add(Skipped, review, "11:20", "presenceChanged")
        .why("the presence was changed by someone else");
    log.add(Skipped, review, "11:45", "ended")
        .why("no override of ours to restore");
    log.add(Applied, focus, "14:00", "started")
        .moved(AVAILABLE, BUSY, "Focus time");
    log.add(Kept, sync, "15:00", "started")
        .why("2 triggers are active; the presence stays");
    log.add(Kept, sync, "15:15", "ended")
        .why("1 triggers are active; the presence stays");
    log.add(Restored, focus, "15:30", "ended")
        .moved(BUSY, AVAILABLE, "");
    log.add(Skipped, late, "16:00", "started")
        .why("the scheduled activity (OnQueueWork) does not allow this change");
    log.records()
}

/// Audit entries in the order added, linked as the audit log links them; starts and ends
/// carry their calendar entry's kind and times, as the transition service writes them.
#[derive(Default)]
struct Log {
    entries: Vec<(AuditEntry, DateTime<Utc>)>,
    calendar: HashMap<String, Value>,
}

impl Log {
    fn event(&mut self, trigger: &str, kind: &str, from: &str, to: &str) {
        let times = json!({"kind": kind, "start": local(from), "end": local(to)});
        self.calendar.insert(trigger.to_owned(), times);
    }

    fn add(&mut self, kind: DecisionKind, trigger: &str, at: &str, cause: &str) -> &mut Self {
        let mut entry = AuditEntry::new(user(), kind);
        entry.trigger_id = Some(TriggerId::parse(trigger).expect("trigger id"));
        entry.event_id = Some(format!("evt-{at}"));
        entry.details = json!({"trigger": cause});
        if let Some(times) = self
            .calendar
            .get(trigger)
            .filter(|_| matches!(cause, "started" | "ended"))
        {
            entry.details["calendar"] = times.clone();
        }
        self.entries.push((entry, local(at)));
        self
    }

    fn last(&mut self) -> &mut AuditEntry {
        &mut self.entries.last_mut().expect("an entry").0
    }

    fn why(&mut self, reason: &str) -> &mut Self {
        self.last().reason = Some(reason.to_owned());
        self
    }

    fn wait(&mut self, until: &str) {
        self.last().details["deferredUntil"] = json!(local(until));
    }

    fn moved(&mut self, from: &str, to: &str, message: &str) {
        let entry = self.last();
        entry.before = presence(from, "");
        entry.after = presence(to, message);
    }

    fn records(self) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for (entry, at) in self.entries {
            let head = records.last().map(AuditRecord::head);
            records.push(AuditRecord::link(entry, head.as_ref(), at));
        }
        records
    }
}

fn user() -> UserId {
    UserId::parse("8d2f6a41-5c3e-4b7a-9e0d-1f2a3b4c5d6e").expect("user id")
}

fn schedule() -> Vec<ScheduledSpan> {
    use ActivityCategory::{Break, Meal, Meeting, OffQueueWork, OnQueueWork};
    let spans = [
        ("08:00", "10:00", OnQueueWork),
        ("10:00", "10:30", Meeting),
        ("10:30", "12:00", OffQueueWork),
        ("12:00", "12:45", Meal),
        ("12:45", "14:00", OnQueueWork),
        ("14:00", "15:30", OffQueueWork),
        ("15:30", "15:45", Break),
        ("15:45", "17:00", OnQueueWork),
    ];
    let span = |(from, to, category)| ScheduledSpan {
        start: local(from),
        end: local(to),
        category,
    };
    spans.into_iter().map(span).collect()
}

/// `autopilot forecast --out`: headless Chromium renders a week's heatmap (with each day's
/// agents behind a click) and makes no request; the screenshot is kept at
/// `target/forecast-page.png`.
#[test]
fn chromium_draws_the_forecast_page_without_a_single_request() {
    use presence_autopilot::decide::forecast::{Interval, Taking};
    use presence_autopilot::operator::forecast_page::{ForecastPage, render_forecast};
    let monday = DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
        .expect("time")
        .to_utc();
    // A week of quarter hours: four agents on queue in working hours, meetings at 10:00 and
    // 14:00 taking two of them (over a cap of one) for half an hour each day.
    let intervals: Vec<Interval> = (0..7 * 96)
        .map(|q| {
            let start = monday + chrono::Duration::minutes(15 * q);
            let hour = (q % 96) / 4;
            let taken = if (hour == 10 || hour == 14) && q % 4 < 2 {
                (0..2)
                    .map(|n| Taking {
                        agent: format!("agent{n}@example.com"),
                        trigger: format!("sync-{q}"),
                        start,
                        end: start + chrono::Duration::minutes(30),
                        presence: "Meeting".to_owned(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Interval {
                start,
                on_queue: if (9..17).contains(&hour) { 4 } else { 0 },
                taken,
                cap: Some(1),
            }
        })
        .collect();
    let page = render_forecast(&ForecastPage {
        team: "tier-1",
        policy: "sha256:0123456789abcdef",
        members: 4,
        zone: chrono_tz::Tz::UTC,
        generated: monday,
        intervals: &intervals,
    });
    let (_, dom, requests) = browse("forecast-page", page);
    assert_eq!(
        dom.stdout.matches("class=\"over\"").count(),
        7 * 4,
        "two quarter hours over the cap at 10:00 and at 14:00 UTC, each day"
    );
    assert_eq!(dom.stdout.matches("<details>").count(), 7, "a day each");
    assert!(dom.stdout.contains("agent1@example.com"));
    assert!(
        requests.is_empty(),
        "network requests were made: {requests:#?}"
    );
}

/// `autopilot team --out`: headless Chromium draws a team's day (a lane per agent: WFM, the
/// known meetings, our override, a waiting start) and makes no request; the screenshot is kept
/// at `target/team-page.png`.
#[test]
fn chromium_draws_the_team_page_without_a_single_request() {
    use presence_autopilot::decide::ScheduledSpan;
    use presence_autopilot::model::ActivityCategory;
    use presence_autopilot::operator::team_page::{LaneMeeting, TeamLane, TeamPage, render_team};
    let at = |hour: u32, minute: u32| {
        DateTime::parse_from_rfc3339(&format!("2026-12-08T{hour:02}:{minute:02}:00Z"))
            .expect("time")
            .to_utc()
    };
    let span = |from: (u32, u32), to: (u32, u32), category| ScheduledSpan {
        start: at(from.0, from.1),
        end: at(to.0, to.1),
        category,
    };
    let shift = vec![
        span((8, 0), (10, 0), ActivityCategory::OnQueueWork),
        span((10, 0), (11, 0), ActivityCategory::Meeting),
        span((11, 0), (12, 0), ActivityCategory::Meal),
        span((12, 0), (16, 0), ActivityCategory::OnQueueWork),
    ];
    let meeting = |from: (u32, u32), to: (u32, u32), applies: bool| LaneMeeting {
        start: at(from.0, from.1),
        end: at(to.0, to.1),
        applies,
        outcome: if applies {
            "Meeting (profile tier-1)"
        } else {
            "skipped: training"
        }
        .to_owned(),
    };
    let lanes: Vec<TeamLane> = (0..4)
        .map(|n| TeamLane {
            agent: format!("agent{n}@example.com"),
            activities: shift.clone(),
            meetings: vec![
                meeting((10, 0), (10, 30), n != 3),
                meeting((14, 0), (15, 0), false),
            ],
            ours: (n < 2).then(|| (Some(at(10, 0)), at(10, 30))),
            holds_slot: n < 2,
            waiting_until: (n == 2).then(|| at(10, 16)),
        })
        .collect();
    let page = render_team(&TeamPage {
        team: "tier-1",
        policy: "sha256:0123456789abcdef",
        zone: chrono_tz::Tz::UTC,
        now: at(10, 15),
        day: (at(0, 0), at(0, 0) + chrono::Duration::days(1)),
        cap: Some(2),
        lanes: &lanes,
    });
    let (_, dom, requests) = browse("team-page", page);
    assert_eq!(dom.stdout.matches("class=\"lane\"").count(), 4);
    assert_eq!(dom.stdout.matches("class=\"ours\"").count(), 2);
    assert_eq!(dom.stdout.matches("class=\"wait\"").count(), 1);
    assert_eq!(dom.stdout.matches("class=\"meeting applies\"").count(), 3);
    assert!(
        requests.is_empty(),
        "network requests were made: {requests:#?}"
    );
}
