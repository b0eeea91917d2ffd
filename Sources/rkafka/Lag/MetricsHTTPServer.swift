import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server for an exporter's endpoints: every request is answered at once
/// by a synchronous `Responder` (it must not block: it runs on the server's event loop).
/// `GET` and `HEAD` only; keep-alive is honoured.
final class MetricsHTTPServer: Sendable {
    /// What to answer.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
    }

    /// The answer to a `GET` (or `HEAD`) of a path (without its query).
    typealias Responder = @Sendable (_ path: String) -> Response

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The address the server listens on (with the port chosen when 0 was asked for).
    let address: ListenAddress

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, address: ListenAddress) {
        self.group = group
        self.channel = channel
        self.address = address
    }

    /// Starts listening on `address`; throws when it cannot (address in use, unknown host).
    static func start(_ address: ListenAddress, responder: @escaping Responder) async throws -> MetricsHTTPServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(RequestHandler(responder))
                    }
                }
                .bind(host: address.host, port: address.port).get()
            let port = channel.localAddress?.port ?? address.port
            return MetricsHTTPServer(
                group: group, channel: channel, address: ListenAddress(host: address.host, port: port))
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, closes open connections and ends the server's thread.
    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Answers each request of one connection once it has been read to its end.
private final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: MetricsHTTPServer.Responder
    private var head: HTTPRequestHead?

    init(_ responder: @escaping MetricsHTTPServer.Responder) {
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let response: MetricsHTTPServer.Response
        if head.method == .GET || head.method == .HEAD {
            response = responder(String(head.uri.prefix { $0 != "?" }))
        } else {
            response = .init(
                status: .methodNotAllowed, contentType: "text/plain; charset=utf-8",
                body: Array("only GET and HEAD are served\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
