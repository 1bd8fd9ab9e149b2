namespace Pop3Functional.Core

open System
open System.Security.Cryptography
open System.Text

/// Which kind of credential a login uses: it decides which mechanisms can carry it.
type SaslCredentialKind =
    /// A password: SCRAM, CRAM-MD5, APOP, PLAIN, LOGIN or USER/PASS.
    | Password = 0
    /// An OAuth 2 bearer token: OAUTHBEARER (RFC 7628) or XOAUTH2.
    | OAuth2 = 1

/// What a SASL mechanism proves to the server.
[<RequireQualifiedAccess>]
type SaslCredentials =
    /// A user name and password; authorizationId asks to act as another identity (PLAIN, SCRAM).
    | Password of user: string * password: Secret * authorizationId: string option
    /// A user name and an OAuth 2 access token (a bearer token: as secret as a password).
    | OAuth2 of user: string * token: Secret

    /// Password or OAuth2.
    member this.Kind =
        match this with
        | Password _ -> SaslCredentialKind.Password
        | OAuth2 _ -> SaslCredentialKind.OAuth2

/// TLS channel-binding data for SCRAM-*-PLUS (RFC 5802 §6): the type, as the gs2 header's p= names
/// it, and the octets the TLS layer gives for it. Not secret (both ends compute it).
type ChannelBinding =
    {
        /// "tls-unique" (RFC 5929 §3), "tls-server-end-point" (RFC 5929 §4) or "tls-exporter" (RFC 9266 §2).
        Type: string
        /// The octets for that type, as both TLS ends compute them (no .NET header or type prefix).
        Data: byte[]
    }

    /// The tls-unique type name (RFC 5929 §3): the first Finished message of the handshake; defined up to TLS 1.2.
    static member TlsUniqueType = "tls-unique"

    /// The tls-server-end-point type name (RFC 5929 §4): a hash of the server's certificate; any TLS version.
    static member TlsServerEndPointType = "tls-server-end-point"

    /// The tls-exporter type name (RFC 9266 §2): keying material exported from the TLS connection.
    static member TlsExporterType = "tls-exporter"

    /// tls-unique data (RFC 5929 §3).
    static member TlsUnique(data: byte[]) =
        {
            Type = ChannelBinding.TlsUniqueType
            Data = data
        }

    /// tls-server-end-point data (RFC 5929 §4).
    static member TlsServerEndPoint(data: byte[]) =
        {
            Type = ChannelBinding.TlsServerEndPointType
            Data = data
        }

    /// True for the types every SCRAM-*-PLUS server must implement, so that the automatic login
    /// choice can count on them: tls-unique up to TLS 1.2 (RFC 5802 §6) and tls-exporter on TLS 1.3
    /// (RFC 9266 §3). tls-server-end-point is optional for servers (Cyrus 3.6 refuses it).
    static member IsMandatoryToImplement(bindingType: string) =
        bindingType = ChannelBinding.TlsUniqueType
        || bindingType = ChannelBinding.TlsExporterType

    /// "ChannelBinding(type, N octets)".
    override this.ToString() =
        let length = if isNull this.Data then 0 else this.Data.Length
        $"ChannelBinding({this.Type}, {length} octets)"

/// What a mechanism needs from the caller besides the credentials. All pure inputs: the core
/// generates nothing random.
type SaslInputs =
    {
        /// The SCRAM client nonce (RFC 5802 §5.1): at least 16 printable ASCII characters other than
        /// ',', from a cryptographic random source, fresh for every exchange. Unused by the others.
        Nonce: string
        /// The server's host name, sent by OAUTHBEARER (RFC 7628 §3.1 host=); None to omit it.
        Host: string option
        /// The server's port, sent by OAUTHBEARER (RFC 7628 §3.1 port=); None to omit it.
        Port: int option
    }

    /// Inputs with this nonce and no host or port.
    static member WithNonce(nonce: string) =
        {
            Nonce = nonce
            Host = None
            Port = None
        }

/// What a SCRAM exchange holds between the initial response and server-first-message.
type internal ScramStart =
    {
        Hash: ScramHash
        /// The SASLprep'd password as UTF-8; cleared into the derived keys at the next step.
        Password: byte[]
        ClientNonce: string
        ClientFirstBare: string
        /// c= of client-final-message: the gs2-header, then the channel-binding data (RFC 5802 §7).
        ChannelBinding: byte[]
    }

/// Where a mechanism's exchange stands.
type internal SaslState =
    /// Everything was in the initial response (PLAIN); no challenge may follow.
    | Complete
    /// LOGIN: the first prompt gets the user name, the second the password.
    | LoginAwaitingUserPrompt of user: byte[] * password: byte[]
    | LoginAwaitingPasswordPrompt of password: byte[]
    /// CRAM-MD5: the server speaks first (RFC 2195 §2).
    | CramAwaitingChallenge of user: string * password: byte[]
    | ScramAwaitingServerFirst of ScramStart
    | ScramAwaitingServerFinal of ScramHash * serverSignature: byte[]
    /// The server proved it knows the password (RFC 5802 §5).
    | ScramVerified
    /// XOAUTH2 or OAUTHBEARER sent the token; a challenge now is the server's error, answered with
    /// this response so that the server can finish with -ERR.
    | BearerSent of errorResponse: byte[]
    /// The server reported an error; -ERR must follow.
    | BearerFailed

/// A client mechanism in progress: immutable, each step gives a new one. Holds key material, so
/// its ToString names the mechanism only.
[<Sealed>]
type SaslClient internal (mechanism: string, state: SaslState, serverError: string option) =
    /// The mechanism's name, uppercase ("SCRAM-SHA-256").
    member _.Mechanism = mechanism
    member internal _.State = state

    /// The error a server sent in a challenge (XOAUTH2/OAUTHBEARER JSON status, RFC 7628 §3.2.2),
    /// as text, or None.
    member _.ServerError = serverError

    /// "SaslClient(MECHANISM)": never the credentials or keys.
    override _.ToString() = $"SaslClient({mechanism})"

/// The client side of the SASL mechanisms (RFC 4422) used with AUTH (RFC 5034): start, then one
/// step per server challenge, then finish when the server answers +OK. Pure: no I/O, no clock, no
/// randomness; hashing only. No function throws, whatever the challenge bytes.
[<RequireQualifiedAccess>]
module Sasl =
    /// The mechanisms implemented here, strongest first.
    let mechanisms =
        [
            "SCRAM-SHA-256-PLUS"
            "SCRAM-SHA-1-PLUS"
            "SCRAM-SHA-256"
            "SCRAM-SHA-1"
            "CRAM-MD5"
            "PLAIN"
            "LOGIN"
            "OAUTHBEARER"
            "XOAUTH2"
        ]

    /// True when the mechanism sends the credential itself (a password or a bearer token), so it
    /// needs TLS unless the caller allowed plaintext credentials.
    let exposesCredential (mechanism: string) =
        match
            (if isNull mechanism then
                 ""
             else
                 mechanism.ToUpperInvariant())
        with
        | "PLAIN"
        | "LOGIN"
        | "XOAUTH2"
        | "OAUTHBEARER" -> true
        | _ -> false

    let private usage message =
        Error(Err.usage UsageErrorKind.InvalidArgument "AUTH" message)

    let private protocol (mechanism: string) message =
        Error(Err.protocol ProtocolErrorKind.BadSaslChallenge "AUTH" $"{mechanism}: {message}")

    let private hasControl (s: string) =
        s |> Seq.exists (fun c -> c < ' ' || c = '\127')

    let private checkName (mechanism: string) (what: string) (value: string) =
        if String.IsNullOrEmpty value then
            usage $"{mechanism}: the {what} is empty"
        elif hasControl value then
            usage $"{mechanism}: the {what} contains a control character"
        else
            Ok value

    let private checkSecret (mechanism: string) (what: string) (value: Secret) =
        if isNull value then
            usage $"{mechanism}: the {what} is missing (null)"
        elif value.IsDisposed then
            usage $"{mechanism}: the {what} was disposed before it was used"
        elif value.Length = 0 then
            usage $"{mechanism}: the {what} is empty"
        else
            Ok(value.RevealUtf8Bytes())

    let private utf8 (s: string) = Encoding.UTF8.GetBytes s

    let private client mechanism state = SaslClient(mechanism, state, None)

    let private noAuthorizationId mechanism (authorizationId: string option) =
        match authorizationId with
        | Some a when a <> "" -> usage $"{mechanism} cannot carry an authorization identity"
        | _ -> Ok()

    let private (>>=) r f = Result.bind f r

    // RFC 4616 §2: message = [authzid] NUL authcid NUL passwd, UTF-8, no NUL inside a field.
    let private startPlain user (password: Secret) authorizationId =
        checkName "PLAIN" "user name" user
        >>= fun user ->
            checkSecret "PLAIN" "password" password
            >>= fun pw ->
                let authz = defaultArg authorizationId ""

                if hasControl authz then
                    usage "PLAIN: the authorization identity contains a control character"
                elif Array.contains 0uy pw then
                    Array.Clear pw
                    usage "PLAIN: the password contains NUL, which PLAIN cannot carry (RFC 4616 §2)"
                else
                    let message = Array.concat [ utf8 authz; [| 0uy |]; utf8 user; [| 0uy |]; pw ]
                    Array.Clear pw
                    Ok(client "PLAIN" Complete, Some message)

    let private startLogin user password authorizationId =
        noAuthorizationId "LOGIN" authorizationId
        >>= fun () -> checkName "LOGIN" "user name" user
        >>= fun user ->
            checkSecret "LOGIN" "password" password
            >>= fun pw -> Ok(client "LOGIN" (LoginAwaitingUserPrompt(utf8 user, pw)), None)

    let private startCram user password authorizationId =
        noAuthorizationId "CRAM-MD5" authorizationId
        >>= fun () -> checkName "CRAM-MD5" "user name" user
        >>= fun user ->
            checkSecret "CRAM-MD5" "password" password
            >>= fun pw -> Ok(client "CRAM-MD5" (CramAwaitingChallenge(user, pw)), None)

    let private startScram
        (mechanism: string)
        (hash: ScramHash)
        (plus: bool)
        user
        (password: Secret)
        authorizationId
        (inputs: SaslInputs)
        (channelBinding: ChannelBinding option)
        =
        let nonce = inputs.Nonce

        if isNull nonce || nonce.Length < 16 || not (nonce |> Seq.forall Scram.isNonceChar) then
            usage
                $"{mechanism}: the client nonce must be at least 16 printable ASCII characters other than ',' (RFC 5802 §5.1)"
        elif plus && channelBinding.IsNone then
            usage $"{mechanism} needs TLS channel-binding data (RFC 5929, RFC 9266), and the session has none"
        elif
            plus
            && (String.IsNullOrEmpty channelBinding.Value.Type
                || channelBinding.Value.Type
                   |> Seq.exists (fun c -> not (Char.IsAsciiLetterOrDigit c || c = '-' || c = '.'))
                || isNull channelBinding.Value.Data
                || channelBinding.Value.Data.Length = 0)
        then
            // RFC 5802 §7: cb-name = 1*(ALPHA / DIGIT / "." / "-").
            usage $"{mechanism}: the channel-binding type or data is empty or malformed (RFC 5802 §7 cb-name)"
        else
            checkName mechanism "user name" user
            >>= fun user ->
                // RFC 5802 §5.1: the user name is SASLprep'd as a query string, then escaped.
                match SaslPrep.prepare user with
                | Error reason -> usage $"{mechanism}: the user name cannot be prepared: {reason}"
                | Ok preparedUser ->
                    checkSecret mechanism "password" password
                    >>= fun raw ->
                        // RFC 5802 §2.2: Normalize(password) is SASLprep; the reason names no character.
                        let prepared = SaslPrep.prepare (Encoding.UTF8.GetString raw)
                        Array.Clear raw

                        match prepared with
                        | Error reason -> usage $"{mechanism}: the password cannot be prepared: {reason}"
                        | Ok pw ->
                            let authz =
                                match authorizationId with
                                | Some a when a <> "" -> Some a
                                | _ -> None

                            match authz with
                            | Some a when hasControl a ->
                                usage $"{mechanism}: the authorization identity contains a control character"
                            | _ ->
                                // RFC 5802 §6: "p=<type>" binds the TLS channel; "y" says the client could
                                // bind but the server did not offer -PLUS; "n" that it does not bind.
                                let flag =
                                    match plus, channelBinding with
                                    | true, Some binding -> "p=" + binding.Type
                                    | true, None -> "n" // refused above
                                    | false, Some _ -> "y"
                                    | false, None -> "n"

                                let authzPart =
                                    authz
                                    |> Option.map (fun a -> "a=" + Scram.escapeName a)
                                    |> Option.defaultValue ""

                                let gs2Header = flag + "," + authzPart + ","
                                let bare = $"n={Scram.escapeName preparedUser},r={nonce}"

                                let cbind =
                                    if plus then
                                        Array.append (utf8 gs2Header) channelBinding.Value.Data
                                    else
                                        utf8 gs2Header

                                let start =
                                    {
                                        Hash = hash
                                        Password = utf8 pw
                                        ClientNonce = nonce
                                        ClientFirstBare = bare
                                        ChannelBinding = cbind
                                    }

                                Ok(client mechanism (ScramAwaitingServerFirst start), Some(utf8 (gs2Header + bare)))

    let private checkToken mechanism token =
        checkSecret mechanism "token" token
        >>= fun bytes ->
            // RFC 6750 §2.1: b64token characters; a space or a control (^A) would break the message.
            if bytes |> Array.forall (fun b -> b > 0x20uy && b < 0x7Fuy) then
                Ok bytes
            else
                Array.Clear bytes
                usage $"{mechanism}: the token holds a space, a control or a non-ASCII character (RFC 6750 §2.1)"

    // Google's and Microsoft's XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A.
    let private startXOAuth2 user token =
        checkName "XOAUTH2" "user name" user
        >>= fun user ->
            checkToken "XOAUTH2" token
            >>= fun t ->
                let message =
                    Array.concat [ utf8 $"user={user}\001auth=Bearer "; t; [| 1uy; 1uy |] ]

                Array.Clear t
                // The error challenge is answered with an empty response (Google's XOAUTH2 protocol).
                Ok(client "XOAUTH2" (BearerSent [||]), Some message)

    // RFC 7628 §3.1: gs2-header ^A [host=h ^A] [port=p ^A] auth=Bearer token ^A ^A.
    let private startOAuthBearer user token (inputs: SaslInputs) =
        checkName "OAUTHBEARER" "user name" user
        >>= fun user ->
            match inputs.Host, inputs.Port with
            | Some h, _ when String.IsNullOrEmpty h || hasControl h || h.Contains ' ' ->
                usage "OAUTHBEARER: the host is empty or holds a space or a control character"
            | _, Some p when p < 1 || p > 65535 -> usage $"OAUTHBEARER: the port {p} is not 1 to 65535"
            | host, port ->
                checkToken "OAUTHBEARER" token
                >>= fun t ->
                    let hostPart =
                        host |> Option.map (fun h -> $"host={h}\001") |> Option.defaultValue ""

                    let portPart =
                        port |> Option.map (fun p -> $"port={p}\001") |> Option.defaultValue ""

                    let head = $"n,a={Scram.escapeName user},\001{hostPart}{portPart}auth=Bearer "

                    let message = Array.concat [ utf8 head; t; [| 1uy; 1uy |] ]
                    Array.Clear t
                    // RFC 7628 §3.2.3: the client answers an error challenge with a single ^A.
                    Ok(client "OAUTHBEARER" (BearerSent [| 1uy |]), Some message)

    /// Starts a mechanism (its name in any case) and gives the initial response, if it has one
    /// (RFC 4422 §3.3). channelBinding is the TLS layer's channel-binding type and data (RFC 5929,
    /// RFC 9266), required by the -PLUS mechanisms, which name its type in p= (RFC 5802 §6-7); for the
    /// others its presence selects the "y" flag (RFC 5802 §6). A mechanism that is not implemented, or credentials it cannot carry, are a UsageError.
    let start
        (mechanism: string)
        (credentials: SaslCredentials)
        (inputs: SaslInputs)
        (channelBinding: ChannelBinding option)
        : Result<SaslClient * byte[] option, UsageError> =
        let name =
            if isNull mechanism then
                ""
            else
                mechanism.ToUpperInvariant()

        let implemented = String.Join(", ", mechanisms)

        if isNull (box credentials) then
            usage "AUTH: the credentials are missing (null)"
        else
            match name, credentials with
            | "PLAIN", SaslCredentials.Password(user, pw, authz) -> startPlain user pw authz
            | "LOGIN", SaslCredentials.Password(user, pw, authz) -> startLogin user pw authz
            | "CRAM-MD5", SaslCredentials.Password(user, pw, authz) -> startCram user pw authz
            | "SCRAM-SHA-1", SaslCredentials.Password(user, pw, authz) ->
                startScram name ScramHash.Sha1 false user pw authz inputs channelBinding
            | "SCRAM-SHA-256", SaslCredentials.Password(user, pw, authz) ->
                startScram name ScramHash.Sha256 false user pw authz inputs channelBinding
            | "SCRAM-SHA-1-PLUS", SaslCredentials.Password(user, pw, authz) ->
                startScram name ScramHash.Sha1 true user pw authz inputs channelBinding
            | "SCRAM-SHA-256-PLUS", SaslCredentials.Password(user, pw, authz) ->
                startScram name ScramHash.Sha256 true user pw authz inputs channelBinding
            | "XOAUTH2", SaslCredentials.OAuth2(user, token) -> startXOAuth2 user token
            | "OAUTHBEARER", SaslCredentials.OAuth2(user, token) -> startOAuthBearer user token inputs
            | ("XOAUTH2" | "OAUTHBEARER"), SaslCredentials.Password _ ->
                usage $"{name} carries an OAuth 2 token, not a password"
            | _, SaslCredentials.OAuth2 _ when List.contains name mechanisms ->
                usage $"{name} carries a password, not an OAuth 2 token (use OAUTHBEARER or XOAUTH2)"
            | _ -> usage $"the SASL mechanism {Err.quote name} is not implemented (implemented: {implemented})"

    /// Answers one decoded server challenge. A challenge the mechanism cannot accept (malformed,
    /// out of order, a server proof that does not verify, an error the mechanism reports) is a
    /// ProtocolError of kind BadSaslChallenge: cancel the exchange and fail the session.
    let step (client: SaslClient) (challenge: byte[]) : Result<SaslClient * byte[], ProtocolError> =
        let mechanism = client.Mechanism

        let next state =
            SaslClient(mechanism, state, client.ServerError)

        let challenge = if isNull challenge then [||] else challenge

        match client.State with
        | Complete -> protocol mechanism "the server sent a challenge after the exchange was complete"
        | LoginAwaitingUserPrompt(user, password) -> Ok(next (LoginAwaitingPasswordPrompt password), user)
        | LoginAwaitingPasswordPrompt password -> Ok(next Complete, password)
        | CramAwaitingChallenge(user, password) ->
            if challenge.Length = 0 then
                protocol mechanism "the challenge is empty; RFC 2195 §2 asks for a msg-id to sign"
            else
                // RFC 2195 §2: user SP lowercase hex of HMAC-MD5 keyed with the password.
                let digest = HMACMD5.HashData(password, challenge)
                Ok(next Complete, utf8 (user + " " + Convert.ToHexStringLower digest))
        | ScramAwaitingServerFirst start ->
            match Scram.parseServerFirst start.ClientNonce challenge with
            | Error reason -> protocol mechanism reason
            | Ok first ->
                let response, serverSignature =
                    Scram.clientFinal
                        start.Hash
                        start.Password
                        start.ClientFirstBare
                        start.ChannelBinding
                        (Encoding.ASCII.GetString challenge)
                        first

                Ok(next (ScramAwaitingServerFinal(start.Hash, serverSignature)), response)
        | ScramAwaitingServerFinal(hash, expected) ->
            match Scram.verifyServerFinal hash expected challenge with
            | Error reason -> protocol mechanism reason
            // RFC 5034 §4: the server sends its final message as a challenge; the answer is empty.
            | Ok() -> Ok(next ScramVerified, [||])
        | ScramVerified -> protocol mechanism "the server sent a challenge after proving its identity"
        | BearerSent errorResponse ->
            let text = Encoding.UTF8.GetString challenge

            let text =
                if text.Length > 1000 then
                    text.Substring(0, 1000) + "…"
                else
                    text

            let error = if text = "" then None else Some text
            Ok(SaslClient(mechanism, BearerFailed, error), errorResponse)
        | BearerFailed -> protocol mechanism "the server sent another challenge after its error"

    /// Checks the exchange when the server answers +OK: SCRAM must have received and verified the
    /// server's signature (RFC 5802 §5), and no mechanism may be accepted before it sent its
    /// credentials. An Error means the server is not the one that knows the password: do not use
    /// the session.
    let finish (client: SaslClient) : Result<unit, ProtocolError> =
        let mechanism = client.Mechanism

        match client.State with
        | Complete
        | ScramVerified
        | BearerSent _ -> Ok()
        | ScramAwaitingServerFirst _
        | ScramAwaitingServerFinal _ ->
            protocol
                mechanism
                "the server accepted the login without sending its signature, so it has not proved that it knows the password (RFC 5802 §5); the session is not used"
        | LoginAwaitingUserPrompt _
        | LoginAwaitingPasswordPrompt _
        | CramAwaitingChallenge _ ->
            protocol mechanism "the server accepted the login before the client sent its credentials"
        | BearerFailed -> protocol mechanism "the server reported an error and then accepted the login"
