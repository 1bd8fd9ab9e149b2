namespace Pop3Functional.Simulator

open System
open System.Collections.Generic
open System.Text
open System.Runtime.InteropServices
open System.Threading

/// The simulator's accounts and messages, shared by every session of one server and safe to use
/// from any thread: an immutable MailStore swapped atomically.
[<Sealed; AllowNullLiteral>]
type Mailboxes() =
    let mutable store = MailStore.empty
    let mutable uidCounter = 0L
    let gate = obj ()

    let update (change: MailStore -> MailStore * 'T) =
        lock gate (fun () ->
            let next, result = change store
            store <- next
            result)

    /// The store as it is now (an immutable value).
    member _.Store = store

    /// Adds an account, or changes the password of an existing one.
    member _.AddUser(user: string, password: string) : unit =
        ArgumentException.ThrowIfNullOrEmpty user
        ArgumentNullException.ThrowIfNull password
        update (fun s -> MailStore.addUser user password s, ())

    /// The account names.
    member _.Users: string list = store.Users

    /// Gives an account one more OAuth 2.0 bearer token that XOAUTH2 and OAUTHBEARER accept (an
    /// account may hold several; adding one twice keeps it once). Tokens are compared in constant
    /// time. Fails for an unknown account.
    member _.AddOAuthToken(user: string, token: string) : unit =
        ArgumentException.ThrowIfNullOrEmpty user
        ArgumentException.ThrowIfNullOrEmpty token

        update (fun s ->
            match MailStore.addToken user token s with
            | Ok next -> next, ()
            | Error _ -> raise (ArgumentException($"There is no account named '{user}'.", nameof user)))

    /// Withdraws a bearer token (as when it expires or is revoked): later logins with it get the
    /// mechanism's error challenge. Unknown accounts and tokens are ignored.
    member _.RevokeOAuthToken(user: string, token: string) : unit =
        ArgumentNullException.ThrowIfNull user
        ArgumentNullException.ThrowIfNull token
        update (fun s -> MailStore.revokeToken user token s, ())

    /// The bearer tokens of an account (for the server's checks).
    member internal _.Tokens(user: string) : string list = store |> MailStore.tokens user

    /// The password of an account (for the server's checks; the sessions' plumbing, like Open,
    /// Commit and Release).
    member internal _.Password(user: string) : string option = store |> MailStore.password user

    /// Delivers a message; the UID defaults to a fresh one. Fails for an unknown account.
    member _.Deliver
        (user: string, content: MessageContent, [<Optional; DefaultParameterValue(null: string)>] uid: string)
        : StoredMessage =
        ArgumentNullException.ThrowIfNull content

        let uid =
            if String.IsNullOrEmpty uid then
                $"sim{Interlocked.Increment(&uidCounter):D8}"
            else
                uid

        update (fun s ->
            match MailStore.deliver user uid content s with
            | Ok(next, message) -> next, message
            | Error _ -> raise (ArgumentException($"There is no account named '{user}'.", nameof user)))

    /// The messages of an account now (not a session's snapshot).
    member _.Messages(user: string) : StoredMessage list =
        match store.TryFind user with
        | Some account -> account.Messages
        | None -> []

    /// A handle on one account's maildrop. With a password, the account is created with it or
    /// its password is changed to it; without one, an account that does not exist yet is created
    /// with an empty password. Decided atomically, so concurrent calls cannot undo each other.
    member this.Mailbox(user: string, [<Optional; DefaultParameterValue(null: string)>] password: string) : Mailbox =
        ArgumentException.ThrowIfNullOrEmpty user

        update (fun s ->
            match s.TryFind user, Option.ofObj password with
            | _, Some p -> MailStore.addUser user p s, ()
            | None, None -> MailStore.addUser user "" s, ()
            | Some _, None -> s, ())

        Mailbox(this, user)

    /// Opens a maildrop for a session (locks, LOGIN-DELAY, snapshot).
    member internal _.Open(policy: OpenPolicy, now: DateTimeOffset, user: string) =
        update (fun s ->
            match MailStore.tryOpen policy now user s with
            | Ok(next, snapshot) -> next, Ok snapshot
            | Error refusal -> s, Error refusal)

    /// Commits a session's deletions (RFC 1939 §6) and releases its lock.
    member internal _.Commit(user: string, deletedKeys: Set<int64>) =
        update (fun s -> MailStore.commit user deletedKeys s, ())

    /// Releases a session's lock without changes.
    member internal _.Release(user: string) =
        update (fun s -> MailStore.release user s, ())

/// One account's maildrop, for tests: add messages, look at what is there.
and [<Sealed>] Mailbox internal (owner: Mailboxes, user: string) =
    /// The account name.
    member _.User = user

    /// Adds a message given as text (LF line ends become CRLF); returns it.
    member _.Add(text: string, [<Optional; DefaultParameterValue(null: string)>] uid: string) : StoredMessage =
        owner.Deliver(user, MessageContent.OfText text, uid)

    /// Adds a message given as octets (kept as they are); returns it.
    member _.Add(bytes: byte[], [<Optional; DefaultParameterValue(null: string)>] uid: string) : StoredMessage =
        owner.Deliver(user, MessageContent.OfBytes bytes, uid)

    /// Adds a message of any content; returns it.
    member _.Add
        (content: MessageContent, [<Optional; DefaultParameterValue(null: string)>] uid: string)
        : StoredMessage =
        owner.Deliver(user, content, uid)

    /// Adds a generated message (MailboxGenerator) with its own UID; returns it.
    member _.Add(message: GeneratedMessage) : StoredMessage =
        ArgumentNullException.ThrowIfNull(box message, nameof message)
        owner.Deliver(user, message.Content, message.Uid)

    /// Adds generated messages in order, each with its own UID; returns them as stored.
    member this.AddRange(messages: GeneratedMessage seq) : IReadOnlyList<StoredMessage> =
        ArgumentNullException.ThrowIfNull messages
        messages |> Seq.map this.Add |> Array.ofSeq :> IReadOnlyList<StoredMessage>

    /// Generates a mailbox (MailboxGenerator.generate options) and adds every message in order;
    /// returns them as stored.
    member this.AddGenerated(options: GeneratorOptions) : IReadOnlyList<StoredMessage> =
        this.AddRange(MailboxGenerator.generate options)

    /// Gives this account one more OAuth 2.0 bearer token that XOAUTH2 and OAUTHBEARER accept
    /// (see Mailboxes.AddOAuthToken); returns this mailbox, so calls chain.
    member this.AddOAuthToken(token: string) : Mailbox =
        owner.AddOAuthToken(user, token)
        this

    /// Withdraws a bearer token from this account (see Mailboxes.RevokeOAuthToken); returns this
    /// mailbox.
    member this.RevokeOAuthToken(token: string) : Mailbox =
        owner.RevokeOAuthToken(user, token)
        this

    /// The messages now.
    member _.Messages: StoredMessage list = owner.Messages user

    /// The number of messages now.
    member _.Count = (owner.Messages user).Length

    /// The UIDs now, in order.
    member _.Uids: string list = owner.Messages user |> List.map _.Uid

    /// The text of message n (1-based, in the current order), UTF-8 decoded.
    member _.Text(n: int) : string =
        Encoding.UTF8.GetString((owner.Messages user |> List.item (n - 1)).Content.ToArray())
