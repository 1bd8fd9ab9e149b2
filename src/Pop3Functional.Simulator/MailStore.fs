namespace Pop3Functional.Simulator

open System

/// A message in a maildrop. Key is the store's own identity (UIDs may be duplicated on purpose
/// by a fault plan; keys never are).
type StoredMessage =
    {
        /// The store's identity for this message, unique within the store.
        Key: int64
        /// The unique-id listing token UIDL reports (RFC 1939 §7).
        Uid: string
        /// The message octets (CRLF line ends, not dot-stuffed).
        Content: MessageContent
        /// The header holds raw octets above 127 (what Courier rewrites unless the client sent
        /// UTF8); found once at delivery, so serving never has to look.
        EightBitHeader: bool
    }

/// What a session sees from login to QUIT (RFC 1939 §4: the maildrop is fixed at login).
type MaildropSnapshot =
    {
        /// The account the session logged in to.
        User: string
        /// The messages, numbered from 1 in this order.
        Messages: StoredMessage[]
    }

/// Why a maildrop could not be opened after the credentials were accepted.
[<RequireQualifiedAccess>]
type OpenRefusal =
    /// Another session holds the maildrop lock (RFC 2449 §8.1.1, [IN-USE]).
    | InUse
    /// The previous login was too recent (RFC 2449 §8.1.2, [LOGIN-DELAY]).
    | LoginDelay of remaining: TimeSpan
    /// No such account.
    | NoSuchUser

/// One account: its password, its messages and its session bookkeeping.
type Account =
    {
        /// The password, also used to check APOP digests and SASL exchanges.
        Password: string
        /// The OAuth 2.0 bearer tokens XOAUTH2 and OAUTHBEARER accept for this account (RFC 6750,
        /// RFC 7628), in the order they were added; empty: OAuth is refused.
        Tokens: string list
        /// The messages in delivery order.
        Messages: StoredMessage list
        /// True while a session holds the maildrop lock.
        Locked: bool
        /// The time of the last successful login (for LOGIN-DELAY).
        LastLogin: DateTimeOffset option
    }

/// Rules a store applies when a session opens a maildrop.
type OpenPolicy =
    {
        /// Refuse a second session with [IN-USE] while one holds the lock (Dovecot with
        /// pop3_lock_session; Cyrus never locks).
        Lock: bool
        /// The minimum time between two logins, enforced with [LOGIN-DELAY]; zero for none.
        LoginDelay: TimeSpan
    }

    /// Lock, no delay: what RFC 1939 §8 expects of a server.
    static member Default =
        {
            Lock = true
            LoginDelay = TimeSpan.Zero
        }

/// An immutable mail store: accounts with their messages. Sessions open a snapshot at login and
/// commit their deletions at QUIT (RFC 1939 §6, the UPDATE state); mail added meanwhile appears
/// only in later sessions.
type MailStore =
    private
        {
            accounts: Map<string, Account>
            nextKey: int64
        }

    /// The account names.
    member this.Users = this.accounts |> Map.keys |> List.ofSeq

    /// The account, if it exists.
    member this.TryFind(user: string) = this.accounts |> Map.tryFind user

/// Operations on a MailStore; each returns a new store.
[<RequireQualifiedAccess>]
module MailStore =
    /// A store with no accounts.
    let empty = { accounts = Map.empty; nextKey = 1L }

    /// Adds an account, or changes the password of an existing one (its messages are kept).
    let addUser (user: string) (password: string) (store: MailStore) =
        let account =
            match store.accounts |> Map.tryFind user with
            | Some a -> { a with Password = password }
            | None ->
                {
                    Password = password
                    Tokens = []
                    Messages = []
                    Locked = false
                    LastLogin = None
                }

        { store with
            accounts = store.accounts |> Map.add user account
        }

    /// Gives an existing account one more valid bearer token (a token it has already is kept once).
    let addToken (user: string) (token: string) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> Error OpenRefusal.NoSuchUser
        | Some account when account.Tokens |> List.contains token -> Ok store
        | Some account ->
            Ok
                { store with
                    accounts =
                        store.accounts
                        |> Map.add
                            user
                            { account with
                                Tokens = account.Tokens @ [ token ]
                            }
                }

    /// Withdraws a bearer token from an account (as an expired or revoked token); nothing happens
    /// when the account or the token is unknown.
    let revokeToken (user: string) (token: string) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> store
        | Some account ->
            { store with
                accounts =
                    store.accounts
                    |> Map.add
                        user
                        { account with
                            Tokens = account.Tokens |> List.filter ((<>) token)
                        }
            }

    /// The bearer tokens of an account (empty for an unknown account).
    let tokens (user: string) (store: MailStore) =
        store.accounts
        |> Map.tryFind user
        |> Option.map _.Tokens
        |> Option.defaultValue []

    /// Delivers a message to an existing account; returns the store and the stored message.
    let deliver (user: string) (uid: string) (content: MessageContent) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> Error OpenRefusal.NoSuchUser
        | Some account ->
            let message =
                {
                    Key = store.nextKey
                    Uid = uid
                    Content = content
                    EightBitHeader = MessageContent.HasEightBitHeader content
                }

            let account =
                { account with
                    Messages = account.Messages @ [ message ]
                }

            Ok(
                {
                    accounts = store.accounts |> Map.add user account
                    nextKey = store.nextKey + 1L
                },
                message
            )

    /// The password of an account.
    let password (user: string) (store: MailStore) =
        store.accounts |> Map.tryFind user |> Option.map (fun a -> a.Password)

    /// Opens the maildrop at login: takes the lock and fixes the snapshot (RFC 1939 §4).
    let tryOpen (policy: OpenPolicy) (now: DateTimeOffset) (user: string) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> Error OpenRefusal.NoSuchUser
        | Some account when policy.Lock && account.Locked -> Error OpenRefusal.InUse
        | Some account ->
            let tooSoon =
                match account.LastLogin with
                | Some last when policy.LoginDelay > TimeSpan.Zero && now - last < policy.LoginDelay ->
                    // A clock that went backwards never makes the wait longer than the delay.
                    Some(min policy.LoginDelay (policy.LoginDelay - (now - last)))
                | _ -> None

            match tooSoon with
            | Some remaining -> Error(OpenRefusal.LoginDelay remaining)
            | None ->
                let account =
                    { account with
                        Locked = account.Locked || policy.Lock
                        LastLogin = Some now
                    }

                let snapshot =
                    {
                        User = user
                        Messages = Array.ofList account.Messages
                    }

                Ok(
                    { store with
                        accounts = store.accounts |> Map.add user account
                    },
                    snapshot
                )

    /// Ends a session without changes (the client went away without QUIT: RFC 1939 §6).
    let release (user: string) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> store
        | Some account ->
            { store with
                accounts = store.accounts |> Map.add user { account with Locked = false }
            }

    /// The UPDATE state (RFC 1939 §6): removes the messages marked deleted and releases the lock.
    let commit (user: string) (deletedKeys: Set<int64>) (store: MailStore) =
        match store.accounts |> Map.tryFind user with
        | None -> store
        | Some account ->
            let account =
                { account with
                    Messages = account.Messages |> List.filter (fun m -> not (deletedKeys.Contains m.Key))
                    Locked = false
                }

            { store with
                accounts = store.accounts |> Map.add user account
            }
