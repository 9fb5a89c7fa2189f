//! The four Log Service services (`actiontrail_log_service`, `access_log_service`, `db_log_service`,
//! `internal_audit_service`): PullLogs over the shards this collector holds.
//!
//! With a consumer group (default) the shards are shared by every collector of the group: a heartbeat every
//! `heartbeat_interval` reports the shards held and receives those assigned; checkpoints live server-side. Without a
//! consumer group the cursors are the local state.
//!
//! Order of a batch (PullLogs from cursor C): its logs are emitted; every write of the sink saves, in the same
//! `MULTI`/`EXEC` as the events, the shard's progress `{version: C, position: logs of the batch queued}`
//! (`...:state:<puller>:shard:<n>`); after the batch's last write its next cursor is committed (the group's
//! checkpoint on the server, or the local state). A shard started again from cursor C (after a crash: the checkpoint
//! or the local cursor) skips the logs its progress for C counts, so a `kill -9` repeats nothing that was queued;
//! progress saved for another cursor is ignored (the batch was committed past it).
//!
//! Deliberate recoveries (the Python consumer silently jumps to the END on `InvalidCursor`, losing data):
//! - `InvalidCursor`: the cursor expired (TTL) or is corrupt; reading resumes at the time of the last log read from
//!   that shard (GetCursor `from=<that second>`: duplicates of that second only), or at `begin` when no time is
//!   known; logged as an error with both cursors.
//! - `ReadQuotaExceed`/`ShardReadQuotaExceed`/`ServerBusy`/5xx/transport: that shard backs off (1 s .. 60 s),
//!   other shards go on.
//! - `ShardNotExist`: the shard is dropped and the shard list is read again at the next heartbeat.
//! - A checkpoint refused because the shard moved to another consumer: the shard is dropped.

use crate::config::{Credentials, LogServiceConfig, ServiceKind};
use crate::flatten::Flattener;
use crate::http::ApiError;
use crate::pb::{self, LogGroup};
use crate::sls::SlsClient;
use logferry_input::event_id::source_hash;
use logferry_input::progress::UNIT_PROGRESS_TTL;
use logferry_input::runtime::cycle_level;
use logferry_input::{EventIdField, PullContext, Puller, PullerError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Progress of one held shard.
#[derive(Debug, Default, Clone)]
struct Shard {
    cursor: Option<String>,
    /// Time (unix s) of the last log read, for InvalidCursor recovery.
    last_time: Option<u32>,
    failures: u32,
    retry_at: Option<Instant>,
    /// The last checkpoint this collector committed (consumer group).
    committed: Option<String>,
    /// Logs of the batch at `cursor` already queued before a restart (its saved progress): skipped once.
    queued: u64,
}

/// Flattens decoded log groups into events (JSON text, with `@devo_pulling_id` when given), parsing ActionTrail's
/// `event` field when asked. Calls `f(time_ms, text)` for each log; returns the number of logs.
pub fn for_each_event<'a>(
    groups: &[LogGroup<'a>],
    parse_event: bool,
    pulling_id: Option<u64>,
    mut f: impl FnMut(i64, &str) -> Result<(), PullerError>,
) -> Result<u64, PullerError> {
    let mut flattener = Flattener::new(parse_event);
    let mut n = 0;
    for g in groups {
        for log in &g.logs {
            let text = flattener.render(g, log, pulling_id).map_err(|e| {
                PullerError::pull(301, format!("a log read again after its decode: {e}"))
            })?;
            f(pb::time_ms(log), text)?;
            n += 1;
        }
    }
    Ok(n)
}

pub struct LogServicePuller {
    cfg: LogServiceConfig,
    creds: Credentials,
    client: Option<SlsClient>,
    shards: BTreeMap<u32, Shard>,
    /// Without a consumer group: the last committed cursor of every shard ever read, merged (a shard's batch only
    /// replaces its own entry), exactly as saved in the local persistence.
    saved_cursors: Map<String, Value>,
    last_heartbeat: Option<Instant>,
    /// Set once the group showed another collector committing under this consumer name (warned once).
    name_shared: bool,
    /// The stable id member (`event_id: true`).
    event_id: Option<EventIdField>,
}

impl LogServicePuller {
    pub fn new(cfg: LogServiceConfig, creds: Credentials) -> Self {
        let event_id = cfg.event_id_field.as_deref().map(EventIdField::new);
        LogServicePuller {
            cfg,
            creds,
            client: None,
            shards: BTreeMap::new(),
            saved_cursors: Map::new(),
            last_heartbeat: None,
            name_shared: false,
            event_id,
        }
    }

    fn client(&self) -> &SlsClient {
        self.client.as_ref().expect("setup ran")
    }

    fn group_timeout(&self) -> u64 {
        self.cfg.heartbeat_interval.as_secs().max(1) * 2
    }

    /// Heartbeat (consumer group) or shard listing (no group), when due; updates the held shards.
    fn refresh_shards(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        if self
            .last_heartbeat
            .is_some_and(|t| t.elapsed() < self.cfg.heartbeat_interval)
        {
            return Ok(());
        }
        self.last_heartbeat = Some(Instant::now());
        let assigned = if self.cfg.use_consumer_group {
            let held: Vec<u32> = self.shards.keys().copied().collect();
            ctx.stats.requests += 1;
            let assigned = match self.client().heartbeat(
                &self.cfg.consumer_group,
                &self.cfg.consumer_name,
                &held,
            ) {
                Ok(a) => a,
                Err(e) if e.is_retryable() => {
                    log::warn!("Heartbeat failed, keeping the shards held ({e})");
                    return Ok(());
                }
                Err(e) => return Err(pull_error(&e)),
            };
            self.detect_shared_name(ctx);
            assigned
        } else {
            ctx.stats.requests += 1;
            self.client().list_shards().map_err(|e| pull_error(&e))?
        };
        let dropped: Vec<u32> = self
            .shards
            .keys()
            .filter(|s| !assigned.contains(s))
            .copied()
            .collect();
        for s in dropped {
            self.shards.remove(&s);
            log::info!(
                "Shard {s} of {} released (now read by another consumer of group {})",
                self.cfg.logstore,
                self.cfg.consumer_group
            );
        }
        for s in assigned {
            if let std::collections::btree_map::Entry::Vacant(v) = self.shards.entry(s) {
                v.insert(Shard::default());
                log::info!(
                    "Shard {s} of {} assigned to this collector ({})",
                    self.cfg.logstore,
                    self.cfg.consumer_name
                );
            }
        }
        Ok(())
    }

    /// Two collectors with one consumer name are one consumer for the group: both are given the same shards and
    /// read every log twice. The group shows it: a shard this collector holds carries, under this name, a
    /// checkpoint it did not commit. Warns once.
    fn detect_shared_name(&mut self, ctx: &mut PullContext) {
        if self.name_shared || self.shards.values().all(|s| s.committed.is_none()) {
            return;
        }
        ctx.stats.requests += 1;
        let checkpoints = match self.client().list_checkpoints(&self.cfg.consumer_group) {
            Ok(c) => c,
            Err(e) => {
                log::debug!(
                    "Checkpoints of group {} not read ({e})",
                    self.cfg.consumer_group
                );
                return;
            }
        };
        let foreign = checkpoints.iter().find(|c| {
            c.consumer == self.cfg.consumer_name
                && self
                    .shards
                    .get(&c.shard)
                    .and_then(|s| s.committed.as_deref())
                    .is_some_and(|mine| mine != c.cursor)
        });
        if let Some(c) = foreign {
            self.name_shared = true;
            log::warn!(
                "Another collector uses the consumer name {} in group {} of {}: shard {} has the checkpoint {} under this                  name, not the {} this collector committed. Both read the same shards, so every log is delivered twice;                  give each collector its own consumer_name (or leave it out: the default is unique per machine and process)",
                self.cfg.consumer_name,
                self.cfg.consumer_group,
                self.cfg.logstore,
                c.shard,
                c.cursor,
                self.shards[&c.shard].committed.as_deref().unwrap_or_default()
            );
        }
    }

    /// The cursor to read a shard from: its checkpoint, else the configured start.
    fn start_cursor(&self, ctx: &mut PullContext, shard: u32) -> Result<String, ApiError> {
        if self.cfg.use_consumer_group {
            ctx.stats.requests += 1;
            if let Some(c) = self
                .client()
                .get_checkpoint(&self.cfg.consumer_group, shard)?
            {
                log::info!("Shard {shard}: resuming from the group's checkpoint {c}");
                return Ok(c);
            }
        } else if let Some(c) = self
            .saved_cursors
            .get(&shard.to_string())
            .and_then(Value::as_str)
        {
            log::info!("Shard {shard}: resuming from the persistence, cursor {c}");
            return Ok(c.to_owned());
        }
        ctx.stats.requests += 1;
        let from = self.cfg.start.as_from();
        let c = self.client().get_cursor(shard, &from)?;
        log::info!("Shard {shard}: no checkpoint, starting from {from} (cursor {c})");
        Ok(c)
    }

    /// Saves a shard's cursor in the local persistence, merged with every other shard's last cursor.
    fn save_cursor(
        &mut self,
        ctx: &mut PullContext,
        shard: u32,
        cursor: &str,
    ) -> Result<(), PullerError> {
        self.saved_cursors
            .insert(shard.to_string(), Value::from(cursor));
        ctx.commit_state(json!({"cursors": self.saved_cursors}))
    }

    /// The Redis key of a shard's progress inside its current batch.
    fn progress_key(ctx: &PullContext, shard: u32) -> String {
        ctx.progress_key(&format!("shard:{shard}"))
    }

    /// After a restart at `cursor`: the logs of its batch already queued (the shard's saved progress for that very
    /// cursor), said in the log; 0 when none were.
    fn queued_at(
        &self,
        ctx: &mut PullContext,
        shard: u32,
        cursor: &str,
    ) -> Result<u64, PullerError> {
        let key = Self::progress_key(ctx, shard);
        let queued = match ctx.load_progress(&key)? {
            Some(saved) if saved.version == cursor => saved.position,
            _ => 0,
        };
        if queued > 0 {
            log::info!(
                "Resuming shard {shard} of {} at cursor {cursor}, log {queued}: {queued} logs already queued",
                self.cfg.logstore
            );
        }
        Ok(queued)
    }

    /// Emits a pulled batch (read from `cursor`) after the logs already queued, each write saving the shard's
    /// progress with its events; flushes it to Redis, then commits its next cursor.
    fn deliver(
        &mut self,
        ctx: &mut PullContext,
        shard: u32,
        cursor: &str,
        groups: &[LogGroup],
        next: &str,
    ) -> Result<bool, PullerError> {
        self.warn_non_utf8(shard, groups, next);
        let tag = self.cfg.tag.clone();
        let mut last = None;
        let pulling_id = Some(ctx.pulling_id());
        let queued = self.shards.get(&shard).map_or(0, |s| s.queued);
        let key = Self::progress_key(ctx, shard);
        ctx.track_item(key, cursor.to_owned(), queued, UNIT_PROGRESS_TTL);
        let mut position = 0;
        // Stable ids: the batch's source (logstore, shard, cursor) and the log's index in the batch.
        let id_base = self.event_id.is_some().then(|| {
            let shard = shard.to_string();
            format!(
                "{}-",
                source_hash(&[&self.cfg.project, &self.cfg.logstore, &shard, cursor])
            )
        });
        let mut event_id = self.event_id.take();
        let n = for_each_event(groups, self.cfg.parse_event_field, pulling_id, |t, text| {
            last = Some((t / 1000) as u32);
            position += 1;
            if position <= queued {
                return Ok(());
            }
            ctx.advance_item(position);
            match (&mut event_id, &id_base) {
                (Some(field), Some(base)) => {
                    let member = field.member(base, position - 1);
                    ctx.emit_object(&tag, t, text, None, Some(member))
                }
                _ => ctx.emit_parts(&tag, t, text),
            }
        });
        self.event_id = event_id;
        let n = n?;
        ctx.stats.received += n;
        ctx.end_item();
        ctx.flush()?;
        if let Some(st) = self.shards.get_mut(&shard) {
            st.queued = 0;
        }
        if self.cfg.use_consumer_group {
            ctx.stats.requests += 1;
            if let Err(e) = self.client().checkpoint(
                &self.cfg.consumer_group,
                &self.cfg.consumer_name,
                shard,
                next,
                false,
            ) {
                if matches!(
                    e.code(),
                    "ConsumerNotMatch" | "ConsumerNotExsit" | "ConsumerNotExist" | "ShardNotExist"
                ) {
                    log::warn!("Checkpoint of shard {shard} refused ({e}): the shard now belongs to another consumer; dropping it");
                    self.shards.remove(&shard);
                    return Ok(false);
                }
                return Err(pull_error(&e));
            }
            if let Some(st) = self.shards.get_mut(&shard) {
                st.committed = Some(next.to_owned());
            }
        } else {
            self.save_cursor(ctx, shard, next)?;
        }
        if let Some(st) = self.shards.get_mut(&shard) {
            st.cursor = Some(next.to_owned());
            if last.is_some() {
                st.last_time = last;
            }
        }
        Ok(true)
    }

    /// Text that is not UTF-8 is delivered with U+FFFD in place of the bad bytes: said once per batch.
    fn warn_non_utf8(&self, shard: u32, groups: &[LogGroup], next: &str) {
        let replaced: u32 = groups.iter().map(|g| g.non_utf8_fields).sum();
        if replaced > 0 {
            log::warn!(
                "{replaced} field(s) of the batch of shard {shard} of {}/{} (the batch before cursor {next}) held bytes                  that are not UTF-8: they are delivered with U+FFFD in place of those bytes",
                self.cfg.project,
                self.cfg.logstore
            );
        }
    }

    /// Reads one batch of a shard; returns whether data came.
    fn pull_shard(&mut self, ctx: &mut PullContext, shard: u32) -> Result<bool, PullerError> {
        let st = self.shards.get(&shard).cloned().unwrap_or_default();
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(false);
        }
        let cursor = match st.cursor {
            Some(c) => c,
            None => match self.start_cursor(ctx, shard) {
                Ok(c) => {
                    let queued = self.queued_at(ctx, shard, &c)?;
                    if let Some(s) = self.shards.get_mut(&shard) {
                        s.cursor = Some(c.clone());
                        s.queued = queued;
                    }
                    // A start at `end` is kept at once: logs written while the collector is down are read later.
                    if !self.cfg.use_consumer_group
                        && !self.saved_cursors.contains_key(&shard.to_string())
                    {
                        self.save_cursor(ctx, shard, &c)?;
                    }
                    c
                }
                Err(e) => return self.shard_failed(shard, &e).map(|_| false),
            },
        };
        ctx.stats.requests += 1;
        match self
            .client()
            .pull_logs(shard, &cursor, self.cfg.fetch_count)
        {
            Ok(p) => {
                let groups = match p.groups() {
                    Ok(g) => g,
                    Err(e) => return self.shard_failed(shard, &e).map(|_| false),
                };
                if let Some(s) = self.shards.get_mut(&shard) {
                    s.failures = 0;
                    s.retry_at = None;
                }
                if p.count == 0 && p.next_cursor == cursor {
                    return Ok(false);
                }
                self.deliver(ctx, shard, &cursor, &groups, &p.next_cursor)?;
                Ok(p.count > 0)
            }
            Err(e) if e.code() == "InvalidCursor" => {
                let from = st
                    .last_time
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "begin".into());
                log::error!(
                    "InvalidCursor on shard {shard} of {} (cursor {cursor}): the data at that position expired or the cursor is corrupt. \
                     Resuming at {from} (the time of the last log read, or the oldest data kept): logs of that second may be repeated, \
                     logs removed by the retention are lost ({e})",
                    self.cfg.logstore
                );
                ctx.stats.requests += 1;
                match self.client().get_cursor(shard, &from) {
                    Ok(c) => {
                        if let Some(s) = self.shards.get_mut(&shard) {
                            s.cursor = Some(c);
                            s.queued = 0;
                        }
                        Ok(true)
                    }
                    Err(e) => self.shard_failed(shard, &e).map(|_| false),
                }
            }
            Err(e) if e.code() == "ShardNotExist" => {
                log::warn!(
                    "Shard {shard} of {} does not exist any more ({e}); dropping it",
                    self.cfg.logstore
                );
                self.shards.remove(&shard);
                self.last_heartbeat = None;
                Ok(false)
            }
            Err(e) => self.shard_failed(shard, &e).map(|_| false),
        }
    }

    /// Backs a shard off after a retryable error; fails the cycle otherwise.
    fn shard_failed(&mut self, shard: u32, e: &ApiError) -> Result<(), PullerError> {
        if !e.is_retryable() {
            return Err(pull_error(e));
        }
        let st = self.shards.entry(shard).or_default();
        st.failures += 1;
        let wait = Duration::from_secs(1u64 << st.failures.min(6).saturating_sub(1))
            .min(Duration::from_secs(60));
        st.retry_at = Some(Instant::now() + wait);
        let quota = matches!(e.code(), "ReadQuotaExceed" | "ShardReadQuotaExceed");
        log::warn!(
            "{} on shard {shard}: backing off {} s ({e})",
            if quota {
                "Read quota exceeded"
            } else {
                "Temporary failure"
            },
            wait.as_secs()
        );
        Ok(())
    }
}

fn pull_error(e: &ApiError) -> PullerError {
    let err = PullerError::pull(301, format!("Error during pull: {e}"));
    if matches!(
        e.code(),
        "Unauthorized"
            | "SignatureNotMatch"
            | "LogStoreNotExist"
            | "ProjectNotExist"
            | "ConsumerGroupNotExist"
    ) {
        err.fatal()
    } else {
        err
    }
}

impl Puller for LogServicePuller {
    fn setup(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        let client = SlsClient::new(
            &self.cfg.endpoint,
            &self.cfg.logstore,
            self.creds.clone(),
            self.cfg.timeout,
        )
        .map_err(crate::cannot_build_authentication)?;
        self.client = Some(client);
        let test = crate::authentication_test_failed;
        ctx.stats.requests += 1;
        let shards = self.client().list_shards().map_err(test)?;
        log::info!(
            "Logstore {}/{} has {} shard(s)",
            self.cfg.project,
            self.cfg.logstore,
            shards.len()
        );
        if self.cfg.use_consumer_group {
            self.client()
                .ensure_consumer_group(&self.cfg.consumer_group, self.group_timeout())
                .map_err(test)?;
            log::info!(
                "Consumer group {} ready (timeout {} s); this collector is consumer {}",
                self.cfg.consumer_group,
                self.group_timeout(),
                self.cfg.consumer_name
            );
        }
        Ok(())
    }

    /// With a consumer group the checkpoints live in the group, not in the local persistence.
    fn keeps_local_state(&self) -> bool {
        !self.cfg.use_consumer_group
    }

    fn pre_pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        if !self.cfg.use_consumer_group {
            if let Some(Value::Object(saved)) = ctx.state().get("cursors") {
                self.saved_cursors = saved.clone();
            }
        }
        Ok(())
    }

    fn max_cycle(&self) -> Duration {
        self.cfg.max_cycle
    }

    fn pull(&mut self, ctx: &mut PullContext) -> Result<(), PullerError> {
        loop {
            self.refresh_shards(ctx)?;
            let mut data = false;
            let held: Vec<u32> = self.shards.keys().copied().collect();
            for shard in held {
                if ctx.stopping() {
                    return Ok(());
                }
                data |= self.pull_shard(ctx, shard)?;
            }
            if data {
                ctx.log_partial_stats();
            }
            if !data || ctx.stopping() || ctx.cycle_over() {
                break;
            }
        }
        if self.shards.values().all(|s| s.retry_at.is_none()) {
            log::log!(
                cycle_level(ctx.stats.received > 0),
                "The data is up to date!"
            );
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &mut PullContext) {
        if self.cfg.kind != ServiceKind::ActionTrail && self.cfg.use_consumer_group {
            log::info!(
                "Consumer {} stops; its {} shard(s) go to the other consumers of group {} after the group timeout ({} s). Checkpoints are committed",
                self.cfg.consumer_name,
                self.shards.len(),
                self.cfg.consumer_group,
                self.group_timeout()
            );
        }
    }
}
