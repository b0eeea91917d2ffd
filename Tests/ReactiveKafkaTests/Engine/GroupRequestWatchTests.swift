import CRdKafka
import Foundation
import ReactiveKafkaTestKit
import Testing

@testable import ReactiveKafka

/// When commits may go out without racing a rejoin of the group (librdkafka 2.0.x answers a commit
/// queued behind a JoinGroup with ILLEGAL_GENERATION and declares the whole assignment lost).
@Suite struct GroupRequestWatchTests {
    let limit: Duration = .seconds(5)

    @Test func commitsGoOutWhileNoRejoinIsUnderWay() {
        let watch = GroupRequestWatch()
        var sent = 0
        #expect(watch.send(limit: limit) { sent += 1 })
        #expect(sent == 1)
    }

    @Test func aJoinGroupWrittenHoldsCommitsUntilTheNextRebalanceCallback() {
        let watch = GroupRequestWatch()
        watch.rebalanceCallback(cooperative: true)
        let t0 = ContinuousClock.now
        watch.requestWritten(GroupRequestWatch.joinGroup, at: t0)
        var sent = 0
        #expect(!watch.send(limit: limit, now: t0 + .milliseconds(1)) { sent += 1 })
        // Answered JoinGroup: the SyncGroup is still to come, commits still wait.
        watch.responseReceived(GroupRequestWatch.joinGroup, at: t0 + .seconds(1))
        #expect(!watch.send(limit: limit, now: t0 + .seconds(2)) { sent += 1 })
        #expect(sent == 0)
        watch.rebalanceCallback(cooperative: true)
        #expect(watch.send(limit: limit, now: t0 + .seconds(2)) { sent += 1 })
        #expect(sent == 1)
    }

    @Test func aRejoinHeldUpLetsCommitsOutAfterTheLimit() {
        let watch = GroupRequestWatch()
        watch.rebalanceCallback(cooperative: true)
        let t0 = ContinuousClock.now
        watch.requestWritten(GroupRequestWatch.joinGroup, at: t0)
        #expect(!watch.send(limit: limit, now: t0 + limit - .milliseconds(1)) {})
        #expect(watch.send(limit: limit, now: t0 + limit) {})
        // A closing consumer (limit zero) is not held by the rejoin.
        #expect(watch.send(limit: .zero, now: t0) {})
    }

    @Test func aHeartbeatAnswerHoldsACooperativeMembersCommitsBrieflyForTheRejoinItMayStart() {
        let watch = GroupRequestWatch()
        watch.rebalanceCallback(cooperative: true)
        let t0 = ContinuousClock.now
        watch.responseReceived(GroupRequestWatch.heartbeat, at: t0)
        #expect(!watch.send(limit: limit, now: t0) {})
        #expect(!watch.send(limit: limit, now: t0 + GroupRequestWatch.heartbeatSettle - .milliseconds(1)) {})
        #expect(watch.send(limit: limit, now: t0 + GroupRequestWatch.heartbeatSettle) {})

        // The answer started a rejoin: commits wait for the rebalance callback, not the settle time.
        watch.responseReceived(GroupRequestWatch.heartbeat, at: t0 + .seconds(1))
        watch.requestWritten(GroupRequestWatch.joinGroup, at: t0 + .seconds(1) + .milliseconds(1))
        #expect(!watch.send(limit: limit, now: t0 + .seconds(2)) {})
        watch.rebalanceCallback(cooperative: true)
        #expect(watch.send(limit: limit, now: t0 + .seconds(2)) {})

        // A rebalance callback also ends a heartbeat's hold: no rejoin starts while it runs.
        watch.responseReceived(GroupRequestWatch.heartbeat, at: t0 + .seconds(3))
        watch.rebalanceCallback(cooperative: true)
        #expect(watch.send(limit: limit, now: t0 + .seconds(3)) {})
    }

    /// An eager member revokes (and commits) in a callback before it rejoins: a heartbeat answer
    /// does not hold its commits.
    @Test func aHeartbeatAnswerDoesNotHoldAnEagerMembersCommits() {
        let watch = GroupRequestWatch()
        watch.rebalanceCallback(cooperative: false)
        let t0 = ContinuousClock.now
        watch.responseReceived(GroupRequestWatch.heartbeat, at: t0)
        #expect(watch.send(limit: limit, now: t0) {})
    }

    @Test func commitsWrittenBehindAPendingJoinGroupAreCounted() {
        let watch = GroupRequestWatch()
        watch.requestWritten(GroupRequestWatch.offsetCommit)
        #expect(watch.commitsBehindJoin == 0)
        watch.requestWritten(GroupRequestWatch.joinGroup)
        watch.requestWritten(GroupRequestWatch.offsetCommit)
        #expect(watch.commitsBehindJoin == 1)
        watch.responseReceived(GroupRequestWatch.joinGroup)
        watch.requestWritten(GroupRequestWatch.offsetCommit)
        #expect(watch.commitsBehindJoin == 1)
    }

    /// The interceptors are installed on a real client: a consumer joining a group on the embedded
    /// cluster writes a JoinGroup and has its heartbeats answered, and the watch hears both.
    @Test func theInterceptorsHearAConsumersGroupRequests() async throws {
        let kafka = try EmbeddedKafka()
        defer { kafka.stop() }
        try kafka.createTopic("watched", partitions: 2)
        let watch = GroupRequestWatch()
        let heard = try await onOwnThread { () throws -> (join: Bool, heartbeat: Bool) in
            let conf = rd_kafka_conf_new()!
            var errstr = [CChar](repeating: 0, count: 512)
            let properties = EmbeddedKafka.fastGroupProperties.merging([
                "bootstrap.servers": kafka.bootstrapServers, "group.id": "watched-group", "log_level": "0",
            ]) { $1 }
            for (key, value) in properties { _ = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) }
            watch.install(on: conf)
            guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &errstr, errstr.count) else {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(.fatal, String(cString: errstr))
            }
            defer {
                rd_kafka_consumer_close(rk)
                rd_kafka_destroy(rk)
            }
            rd_kafka_poll_set_consumer(rk)
            let topics = rd_kafka_topic_partition_list_new(1)!
            rd_kafka_topic_partition_list_add(topics, "watched", RD_KAFKA_PARTITION_UA)
            rd_kafka_subscribe(rk, topics)
            rd_kafka_topic_partition_list_destroy(topics)
            let deadline = ContinuousClock.now + .seconds(30)
            var heard = (join: false, heartbeat: false)
            while ContinuousClock.now < deadline, !(heard.join && heard.heartbeat) {
                if let message = rd_kafka_consumer_poll(rk, 50) { rd_kafka_message_destroy(message) }
                watch.state.withLock { s in
                    heard.join = heard.join || s.joinWrittenAt != nil
                    heard.heartbeat = heard.heartbeat || s.heartbeatAnsweredAt != nil
                }
                // Assigned (no rebalance callback here: librdkafka assigns on its own): the join is
                // done, as the engine's callback would tell the watch; heartbeats follow.
                var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
                if heard.join, rd_kafka_assignment(rk, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment {
                    if assignment.pointee.cnt > 0 { watch.rebalanceCallback(cooperative: true) }
                    rd_kafka_topic_partition_list_destroy(assignment)
                }
            }
            return heard
        }
        #expect(heard.join, "a JoinGroup written")
        #expect(heard.heartbeat, "a heartbeat answered")
    }

    private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }

    /// An eager member has nothing assigned while it rejoins (it revoked everything first): a
    /// JoinGroup does not hold its commits, which would only time out behind a slow join.
    @Test func aJoinGroupDoesNotHoldAnEagerMembersCommits() {
        let watch = GroupRequestWatch()
        watch.rebalanceCallback(cooperative: false)
        let t0 = ContinuousClock.now
        watch.requestWritten(GroupRequestWatch.joinGroup, at: t0)
        #expect(watch.send(limit: limit, now: t0 + .milliseconds(1)) {})
    }
}
