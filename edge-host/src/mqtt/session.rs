//! The MQTT participant's loop: one task owns the participant and the client and moves
//! bytes between them; rumqttc's event loop runs in a second task that only forwards
//! events, so requests and events keep their order (which `acks` relies on).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::string::{String, ToString};
use std::time::Duration;
use std::vec::Vec;
use std::{eprintln, format, println};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::acks::{Acks, GroupId, Slot};
use super::url::BrokerUrl;
use super::wire::{self, queue_name};
use super::{MqttError, Options};
use crate::instance::Engine;
use crate::message::{CallOutcome, Message, TimerCommand};
use crate::participant::Participant;

/// How long shutdown waits for outstanding PUBACKs, so handled messages get acked.
const GRACE: Duration = Duration::from_secs(5);

/// Runs the participant until `shutdown` resolves (or the client stops).
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), MqttError> {
    let url = BrokerUrl::parse(&options.broker)?;
    let deploys = !options.trust.is_empty();
    #[cfg(not(feature = "ota"))]
    if deploys || options.state.is_some() {
        return Err(MqttError::NoOta);
    }
    #[cfg(feature = "ota")]
    let (deployer, component, source) = deployer(&options, deploys)?;
    #[cfg(not(feature = "ota"))]
    let (component, source) = (options.component.clone(), options.source.clone());
    let (participant, started) = Participant::new(&Engine::new(), &component, options.limits)
        .map_err(|error| MqttError::Load { source, error })?;
    #[cfg(feature = "ota")]
    let participant = {
        let mut participant = participant;
        if let Some(deployer) = deployer {
            participant.accept_deployments(deployer);
        }
        participant
    };
    let role = options.role.clone();
    let client_id = url
        .client_id
        .clone()
        .unwrap_or_else(|| format!("wasmflo-edge-{role}"));
    let mut mqtt = MqttOptions::new(client_id.clone(), url.host.clone(), url.port);
    // The server host's packet limit, or more if the largest deployment accepted (one
    // packet) needs it: a larger packet would fail the connection, again on every retry.
    let packet = usize::try_from(options.max_deploy)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024)
        .max(256 << 20);
    mqtt.set_clean_session(url.clean_session)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(100)
        .set_max_packet_size(packet, packet);
    if let Some(user) = &url.user {
        mqtt.set_credentials(user.clone(), url.password.clone().unwrap_or_default());
    }
    #[cfg(feature = "tls")]
    if url.tls {
        let config = super::tls::client_config(options.ca_file.as_deref(), &url.redacted())?;
        mqtt.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    let (client, eventloop) = AsyncClient::new(mqtt, 256);
    let (tx, events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(eventloop, tx));
    let version = version(&component);
    let mut s = Session {
        id: wire::instance_id(&role),
        client_id,
        role,
        url: url.redacted(),
        group: url.shared.clone(),
        client,
        events,
        acks: Acks::default(),
        participant,
        version,
        subscribed: Vec::new(),
        retired: HashSet::new(),
        subscribing: VecDeque::new(),
        subscriptions: HashMap::new(),
        unsubacked: 0,
        connected: false,
        connections: 0,
        announced: false,
        params: VecDeque::new(),
        data: VecDeque::new(),
        deploys: VecDeque::new(),
        deploy_topic: deploys.then(|| wire::deploy_topic(&options.role)),
        last_deployment: None,
        timers: HashMap::new(),
    };
    let result = s.serve(started, shutdown).await;
    driver.abort();
    result
}

/// The deployer (with its store, under `--state`) and the component to start from: the
/// last deployed one if the store keeps it and it loads, else the file given.
#[cfg(feature = "ota")]
fn deployer(
    options: &Options,
    deploys: bool,
) -> Result<(Option<crate::ota::Deployer>, Vec<u8>, String), MqttError> {
    use crate::store::FileDeploymentStore;
    let file = (options.component.clone(), options.source.clone());
    if !deploys {
        return Ok((None, file.0, file.1));
    }
    let deployer = crate::ota::Deployer::new(
        &options.role,
        options.trust.clone(),
        options.sequence,
        options.max_deploy,
    );
    let Some(dir) = &options.state else {
        return Ok((Some(deployer), file.0, file.1));
    };
    let state = |error| MqttError::State { error };
    std::fs::create_dir_all(dir).map_err(|e| {
        state(crate::store::StoreError::Io {
            op: "create the directory",
            at: dir.display().to_string(),
            detail: e.to_string(),
        })
    })?;
    let store = FileDeploymentStore::new(dir.join(format!("{}.deployment", options.role)));
    let path = store.path().display().to_string();
    let (deployer, stored) = deployer
        .with_store(std::boxed::Box::new(store))
        .map_err(state)?;
    let log = |text: String| eprintln!("wasmflo-edge {}: {text}", options.role);
    let Some(stored) = stored else {
        log(format!(
            "no deployment in {path}; starting from {} (deployments above sequence {})",
            options.source,
            deployer.sequence()
        ));
        return Ok((Some(deployer), file.0, file.1));
    };
    match stored.component {
        Some(bytes) if crate::Component::new(&Engine::new(), &bytes).is_ok() => {
            log(format!(
                "starting from deployment {} in {path} (deployments above sequence {})",
                stored.sequence,
                deployer.sequence()
            ));
            Ok((Some(deployer), bytes, path))
        }
        kept => {
            log(format!(
                "{}; starting from {} (deployments above sequence {})",
                if kept.is_some() {
                    "the deployed component in the state does not load"
                } else {
                    "the state keeps no component"
                },
                options.source,
                deployer.sequence()
            ));
            Ok((Some(deployer), file.0, file.1))
        }
    }
}

/// Forwards the event loop's events; reconnects with backoff after an error.
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, String>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if matches!(event, Ok(Event::Incoming(Packet::ConnAck(_)))) {
            backoff = Duration::from_millis(100);
        }
        if tx.send(event.map_err(|e| e.to_string())).is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The first 12 hex digits of a component's sha256, the server host's version.
fn version(bytes: &[u8]) -> String {
    let mut v = crate::hex::encode(&Sha256::digest(bytes));
    v.truncate(12);
    v
}

/// A message taken from an inport topic, not yet handled.
struct Delivery {
    port: String,
    publish: Publish,
    epoch: u64,
}

struct Session {
    role: String,
    id: String,
    /// The MQTT client id, which names this edge host in verdicts.
    #[cfg_attr(not(feature = "ota"), allow(dead_code))]
    client_id: String,
    url: String,
    group: Option<String>,
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
    acks: Acks,
    participant: Participant,
    /// The running component's version (sha256 prefix).
    version: String,
    /// (port id, topic) of every inport subscribed, current or retired.
    subscribed: Vec<(String, String)>,
    /// Inports (lower case) the running component no longer has.
    retired: HashSet<String>,
    /// Topics whose SUBSCRIBE was requested but not yet written.
    subscribing: VecDeque<String>,
    /// Topics by the packet id of their SUBSCRIBE, awaiting the SUBACK.
    subscriptions: HashMap<u16, String>,
    /// SUBACKs still awaited.
    unsubacked: usize,
    connected: bool,
    /// CONNACKs seen: the first connection, or a reconnection.
    connections: u64,
    announced: bool,
    params: VecDeque<Delivery>,
    data: VecDeque<Delivery>,
    deploys: VecDeque<Delivery>,
    deploy_topic: Option<String>,
    /// sha256 (hex) of the deployment message running now.
    last_deployment: Option<String>,
    timers: HashMap<u32, (Instant, Option<Duration>)>,
}

impl Session {
    async fn serve(
        &mut self,
        started: CallOutcome,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), MqttError> {
        tokio::pin!(shutdown);
        // Connect, subscribe every inport (and the deployment topic), then announce.
        while !self.connected {
            match self.events.recv().await {
                Some(Ok(event)) => self.on_event(event).await?,
                Some(Err(detail)) => {
                    return Err(MqttError::Connect {
                        url: self.url.clone(),
                        detail,
                    });
                }
                None => return Err(MqttError::Closed),
            }
        }
        let group = self.acks.begin(None);
        self.apply(group, "start", started).await?;
        self.close(group).await;
        let ports: Vec<String> = self.inports().map(|p| p.id.clone()).collect();
        for port in ports {
            self.subscribe_port(&port).await?;
        }
        if let Some(topic) = self.deploy_topic.clone() {
            self.subscribe(topic).await?;
        }
        while self.unsubacked > 0 {
            self.next_event().await?;
        }
        self.announce().await?;
        let mut ticker = tokio::time::interval(wire::resend_interval(wire::period_from_env()));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let next_timer = self.next_timer();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                event = self.events.recv() => match event {
                    Some(Ok(event)) => self.on_event(event).await?,
                    Some(Err(e)) => self.lost(&e),
                    None => return Err(MqttError::Closed),
                },
                () = sleep_until(next_timer) => {
                    if let Some(id) = next_timer.map(|(id, _)| id) {
                        self.fire_timer(id).await?;
                    }
                }
                _ = ticker.tick() => self.announce().await?,
                () = std::future::ready(()), if self.has_work() => self.work().await?,
            }
        }
        // Let the PUBACKs of what was handled arrive, so it is acked and not redelivered.
        let deadline = Instant::now() + GRACE;
        while !self.acks.idle() {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(event))) => self.on_event(event).await?,
                Ok(Some(Err(e))) => self.lost(&e),
                Ok(None) | Err(_) => break,
            }
        }
        // Requests are written in order: once DISCONNECT is out, so are the acks.
        if self.client.disconnect().await.is_ok() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok(Some(Ok(event))) =
                tokio::time::timeout_at(deadline, self.events.recv()).await
            {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn log(&self, text: &str) {
        eprintln!("wasmflo-edge {}: {text}", self.role);
    }

    fn lost(&mut self, detail: &str) {
        if self.connected {
            self.log(&format!("MQTT connection lost ({detail}); reconnecting"));
        }
        self.connected = false;
    }

    fn inports(&self) -> impl Iterator<Item = &crate::PortDef> {
        self.participant.component().definition().inports.iter()
    }

    async fn next_event(&mut self) -> Result<(), MqttError> {
        match self.events.recv().await {
            Some(Ok(event)) => self.on_event(event).await,
            Some(Err(e)) => {
                self.lost(&e);
                Ok(())
            }
            None => Err(MqttError::Closed),
        }
    }

    async fn on_event(&mut self, event: Event) -> Result<(), MqttError> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                self.connections += 1;
                if self.connections == 1 {
                    return Ok(());
                }
                self.log("reconnected to the MQTT broker");
                self.acks.reconnected();
                if ack.session_present {
                    // The broker redelivers what was not acked: drop the copies held here.
                    let epoch = self.acks.epoch();
                    for q in [&mut self.params, &mut self.data, &mut self.deploys] {
                        q.retain(|d| d.epoch == epoch);
                    }
                } else {
                    let topics: Vec<String> = self
                        .subscribed
                        .iter()
                        .map(|(_, t)| t.clone())
                        .chain(self.deploy_topic.clone())
                        .collect();
                    for topic in topics {
                        self.subscribe(topic).await?;
                    }
                }
            }
            Event::Incoming(Packet::Publish(publish)) => self.received(publish),
            Event::Incoming(Packet::PubAck(ack)) => {
                let ready = self.acks.puback(ack.pkid);
                self.send_acks(ready).await;
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let topic = self.subscriptions.remove(&ack.pkid);
                self.unsubacked = self.unsubacked.saturating_sub(1);
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    let topic = topic.unwrap_or_default();
                    if !self.announced {
                        return Err(MqttError::Subscribe { topic });
                    }
                    self.log(&format!("the broker refused the subscription to '{topic}'"));
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                // Every written publish settles a slot; the first discovery means ready.
                let slot = self.acks.written(pkid);
                if slot == Some(Slot::Discovery) && !self.announced {
                    self.announced = true;
                    self.log(&format!(
                        "participant {} ({}) announced",
                        self.role,
                        self.participant.component().definition().component
                    ));
                    println!("ready {}", self.role);
                    let _ = std::io::stdout().flush();
                }
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(topic) = self.subscribing.pop_front() {
                    self.subscriptions.insert(pkid, topic);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Queues an incoming message for its port (parameters apart, served first).
    fn received(&mut self, publish: Publish) {
        let epoch = self.acks.epoch();
        if self.deploy_topic.as_deref() == Some(publish.topic.as_str()) {
            self.deploys.push_back(Delivery {
                port: String::new(),
                publish,
                epoch,
            });
            return;
        }
        let port = self
            .subscribed
            .iter()
            .find(|(_, topic)| *topic == publish.topic)
            .map(|(port, _)| port.clone());
        let Some(port) = port else {
            // Left over from an earlier subscription of this session: settle it.
            self.data.push_back(Delivery {
                port: String::new(),
                publish,
                epoch,
            });
            return;
        };
        let parameter = self
            .participant
            .component()
            .definition()
            .inport(&port)
            .is_some_and(|p| p.parameter);
        let d = Delivery {
            port,
            publish,
            epoch,
        };
        if parameter {
            self.params.push_back(d);
        } else {
            self.data.push_back(d);
        }
    }

    fn has_work(&self) -> bool {
        !(self.params.is_empty() && self.deploys.is_empty() && self.data.is_empty())
    }

    /// Handles one message: a parameter first, then a deployment, then data.
    async fn work(&mut self) -> Result<(), MqttError> {
        if let Some(d) = self.params.pop_front() {
            return self.handle(d).await;
        }
        if let Some(d) = self.deploys.pop_front() {
            return self.deploy(d).await;
        }
        match self.data.pop_front() {
            Some(d) => self.handle(d).await,
            None => Ok(()),
        }
    }

    async fn handle(&mut self, d: Delivery) -> Result<(), MqttError> {
        let group = self.acks.begin(Some((d.publish.pkid, d.epoch)));
        let port = d.port.as_str();
        if port.is_empty() {
            self.close(group).await;
            return Ok(());
        }
        let payload = &d.publish.payload[..];
        if self.retired.contains(&port.to_ascii_lowercase()) {
            let reason = format!(
                "process '{}' (version {}) no longer has inport '{port}'",
                self.role, self.version
            );
            self.fail(group, &d.publish.topic, port, &reason, payload, false)
                .await?;
            self.close(group).await;
            return Ok(());
        }
        if let Err(fault) = self.participant.ensure_instance() {
            self.apply_restarts(group).await?;
            let reason = format!(
                "process '{r}' has no running instance: process '{r}' port 'start': {}: {}",
                fault.kind,
                fault.detail,
                r = self.role
            );
            self.fail(group, &d.publish.topic, port, &reason, payload, true)
                .await?;
            self.close(group).await;
            return Ok(());
        }
        self.apply_restarts(group).await?;
        let outcome = self
            .participant
            .process(port, &Message::json_text(payload.to_vec()));
        let result = outcome.result.clone();
        self.apply(group, port, outcome).await?;
        if let Err(fault) = result {
            let reason = format!(
                "process '{}' port '{port}': {}: {}",
                self.role, fault.kind, fault.detail
            );
            self.fail(group, &d.publish.topic, port, &reason, payload, true)
                .await?;
            self.apply_restarts(group).await?;
        }
        self.close(group).await;
        Ok(())
    }

    /// Dead-letters a failed message (and reports it on the `error` outport).
    async fn fail(
        &mut self,
        group: GroupId,
        queue: &str,
        port: &str,
        reason: &str,
        payload: &[u8],
        error_port: bool,
    ) -> Result<(), MqttError> {
        self.log(&format!("{reason}; message dead-lettered"));
        let has_error_port = self
            .participant
            .component()
            .definition()
            .outport_index("error")
            .is_some();
        if error_port && has_error_port {
            let topic = queue_name(&self.role, "error");
            self.publish(Slot::Group(group), &topic, wire::error_report(reason, port))
                .await?;
        }
        let dead = wire::dead_letter_topic(queue);
        self.publish(
            Slot::Group(group),
            &dead,
            wire::dead_letter(queue, reason, payload),
        )
        .await
    }

    /// Applies a call's outcome: logs, timers, outputs (published in order).
    async fn apply(
        &mut self,
        group: GroupId,
        what: &str,
        outcome: CallOutcome,
    ) -> Result<(), MqttError> {
        for (level, text) in &outcome.logs {
            eprintln!("{} [{}] {text}", self.role, level.as_str());
        }
        let now = Instant::now();
        for cmd in &outcome.timers {
            match *cmd {
                TimerCommand::Set {
                    id,
                    after_ms,
                    repeat,
                } => {
                    let after = Duration::from_millis(u64::from(after_ms));
                    self.timers
                        .insert(id, (now + after, repeat.then_some(after)));
                }
                TimerCommand::Cancel(id) => {
                    self.timers.remove(&id);
                }
            }
        }
        for (index, msg) in outcome.outputs {
            let port = self
                .participant
                .component()
                .definition()
                .outports
                .get(index)
                .map(|p| p.id.clone());
            if let Some(port) = port {
                let topic = queue_name(&self.role, &port);
                self.publish(Slot::Group(group), &topic, msg.data).await?;
            }
        }
        if let (Err(f), "start" | "timer") = (&outcome.result, what.split(':').next().unwrap_or(""))
        {
            self.log(&format!(
                "process '{}' port '{what}': {}: {}",
                self.role, f.kind, f.detail
            ));
        }
        Ok(())
    }

    /// Applies the calls of instances recreated since the last time.
    async fn apply_restarts(&mut self, group: GroupId) -> Result<(), MqttError> {
        for (what, outcome) in self.participant.take_restarts() {
            if what == "start" {
                // Timers belong to the instance that armed them.
                self.timers.clear();
            } else if let Err(f) = &outcome.result {
                self.log(&format!(
                    "restoring parameter '{what}': {}: {}",
                    f.kind, f.detail
                ));
            }
            self.apply(group, &what, outcome).await?;
        }
        Ok(())
    }

    async fn fire_timer(&mut self, id: u32) -> Result<(), MqttError> {
        match self.timers.get(&id).copied() {
            Some((at, Some(period))) => {
                // Skip missed periods instead of bursting after a stall.
                let mut next = at + period;
                let now = Instant::now();
                while next <= now {
                    next += period;
                }
                self.timers.insert(id, (next, Some(period)));
            }
            _ => {
                self.timers.remove(&id);
            }
        }
        let group = self.acks.begin(None);
        if self.participant.ensure_instance().is_ok() {
            self.apply_restarts(group).await?;
            let outcome = self.participant.on_timer(id);
            self.apply(group, &format!("timer:{id}"), outcome).await?;
        }
        self.apply_restarts(group).await?;
        self.close(group).await;
        Ok(())
    }

    fn next_timer(&self) -> Option<(u32, Instant)> {
        self.timers
            .iter()
            .map(|(id, (at, _))| (*id, *at))
            .min_by_key(|(_, at)| *at)
    }

    /// Publishes at QoS 1 (not retained), tracked as `slot`.
    async fn publish(
        &mut self,
        slot: Slot,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), MqttError> {
        self.acks.requested(slot);
        if self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_err()
        {
            self.acks.unrequest();
            return Err(MqttError::Closed);
        }
        Ok(())
    }

    async fn announce(&mut self) -> Result<(), MqttError> {
        let msg = wire::discovery(
            &self.id,
            &self.role,
            self.participant.component().definition(),
        );
        self.acks.requested(Slot::Discovery);
        if self
            .client
            .publish(wire::DISCOVERY_TOPIC, QoS::AtMostOnce, false, msg)
            .await
            .is_err()
        {
            self.acks.unrequest();
            return Err(MqttError::Closed);
        }
        Ok(())
    }

    async fn subscribe_port(&mut self, port: &str) -> Result<(), MqttError> {
        let topic = queue_name(&self.role, port);
        self.subscribed.push((port.to_string(), topic.clone()));
        self.subscribe(topic).await
    }

    async fn subscribe(&mut self, topic: String) -> Result<(), MqttError> {
        let filter = match (&self.group, self.deploy_topic.as_deref()) {
            (Some(group), deploy) if deploy != Some(topic.as_str()) => {
                format!("$share/{group}/{topic}")
            }
            _ => topic.clone(),
        };
        self.subscribing.push_back(topic);
        self.unsubacked += 1;
        if self
            .client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .is_err()
        {
            return Err(MqttError::Closed);
        }
        Ok(())
    }

    /// Closes a group and sends the acks that became due.
    async fn close(&mut self, group: GroupId) {
        let ready = self.acks.close(group);
        self.send_acks(ready).await;
    }

    async fn send_acks(&self, pkids: Vec<u16>) {
        for pkid in pkids {
            let mut p = Publish::new("", QoS::AtLeastOnce, Vec::new());
            p.pkid = pkid;
            if self.client.try_ack(&p).is_err() {
                let _ = self.client.ack(&p).await;
            }
        }
    }

    /// Verifies a deployment and swaps it in (or not); reports the verdict.
    async fn deploy(&mut self, d: Delivery) -> Result<(), MqttError> {
        let group = self.acks.begin(Some((d.publish.pkid, d.epoch)));
        let payload = &d.publish.payload[..];
        let digest = crate::hex::encode(&Sha256::digest(payload));
        if payload.is_empty() || self.last_deployment.as_deref() == Some(digest.as_str()) {
            // A cleared retained message, or the one running now seen again.
            self.close(group).await;
            return Ok(());
        }
        #[cfg(feature = "ota")]
        self.swap(group, payload, digest).await?;
        #[cfg(not(feature = "ota"))]
        drop(digest);
        self.close(group).await;
        Ok(())
    }

    #[cfg(feature = "ota")]
    async fn swap(
        &mut self,
        group: GroupId,
        payload: &[u8],
        digest: String,
    ) -> Result<(), MqttError> {
        use crate::ota::{Envelope, Manifest};
        let envelope = Envelope::parse(payload);
        let sequence = envelope
            .as_ref()
            .ok()
            .and_then(|e| Manifest::parse(e.manifest).ok())
            .map(|m| m.sequence);
        let seq = sequence.map_or_else(|| "?".to_string(), |s| s.to_string());
        let outcome = match envelope.and_then(|e| self.participant.deploy(&e.deployment())) {
            Ok(calls) => {
                self.timers.clear();
                for (what, outcome) in calls {
                    self.apply(group, &what, outcome).await?;
                }
                self.last_deployment = Some(digest.clone());
                self.version = version(Envelope::parse(payload).map_or(&[][..], |e| e.component));
                self.rewire().await?;
                let component = self.participant.component().definition().component.clone();
                self.log(&format!(
                    "deployment {seq} accepted: now running {component} (version {})",
                    self.version
                ));
                self.announce().await?;
                Ok(component)
            }
            Err(e) => {
                self.log(&format!(
                    "deployment {seq} rejected: {e}; keeping version {}",
                    self.version
                ));
                Err(e.to_string())
            }
        };
        let verdict = wire::Verdict {
            role: self.role.clone(),
            id: self.id.clone(),
            client: self.client_id.clone(),
            deployment: digest,
            sequence,
            outcome,
        };
        let topic = wire::status_topic(&self.role);
        self.publish(Slot::Untracked, &topic, verdict.to_json())
            .await
    }

    /// Subscribes the inports a new component adds; notes those it no longer has.
    #[cfg(feature = "ota")]
    async fn rewire(&mut self) -> Result<(), MqttError> {
        let ports: Vec<String> = self.inports().map(|p| p.id.clone()).collect();
        for port in &ports {
            let known = self
                .subscribed
                .iter()
                .any(|(p, _)| p.eq_ignore_ascii_case(port));
            if !known {
                self.subscribe_port(port).await?;
            }
        }
        let def = self.participant.component().definition().clone();
        self.retired = self
            .subscribed
            .iter()
            .filter(|(p, _)| def.inport(p).is_none())
            .map(|(p, _)| p.to_ascii_lowercase())
            .collect();
        Ok(())
    }
}

async fn sleep_until(timer: Option<(u32, Instant)>) {
    match timer {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
