//! Starts moto's server (PyPI `moto[server]`): two of them, DynamoDB on
//! one and the other services on the other, behind one loopback endpoint
//! (`router`), since one moto process serves one request at a time (it is
//! Python) and was what bounded the local stack under load.
//!
//! moto runs inside a small Python wrapper that stops the server when its
//! standard input closes, so the server never outlives the process that
//! started it, even when that process is killed or is a test binary whose
//! statics are never dropped. The wrapper also serializes moto's DynamoDB
//! table operations: moto rolls a failed transaction back by restoring a copy
//! of the whole table, which, under concurrent requests, undoes other
//! requests' writes. DynamoDB's own transactions are serializable; with the
//! lock, moto's are too. And since moto copies the whole table once per
//! action of a transaction (quadratic in the table's size), the wrapper saves
//! and restores only the items a transaction touches. Last, it lists
//! moto's services once rather than on every request (a directory listing
//! moto does under a lock every request shares). A write that returns an
//! item holds the lock until its answer is made, since moto renders
//! answers from live items.
//! And it skips per-request work nobody reads (a log line; SQS queue
//! attributes built whole, message counts among them, to read one), and
//! checks an update expression's clauses once, at its root, not again at
//! each node of its tree; and it sends an item operation's result, already
//! DynamoDB's JSON, as it is, not walked value by value through botocore's
//! model of the answer.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod router;
use router::Router;

/// The interpreter that has moto installed. Unset, the project's own
/// virtualenv (`target/venv`, made by `.ci/setup`) is used when present, else
/// `python3` from `PATH`.
pub const PYTHON_ENV: &str = "FOXRELAY_PYTHON";

const PROJECT_VENV_PYTHON: &str = "target/venv/bin/python";

fn python() -> String {
    if let Ok(python) = std::env::var(PYTHON_ENV) {
        return python;
    }
    if std::path::Path::new(PROJECT_VENV_PYTHON).exists() {
        return PROJECT_VENV_PYTHON.to_owned();
    }
    "python3".to_owned()
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

const WRAPPER: &str = r#"
import socket, sys
try:
    from moto.server import ThreadedMotoServer
except ImportError as e:
    print("ERROR moto[server] is not installed for " + sys.executable + " (run bash .ci/setup): " + str(e), flush=True)
    sys.exit(3)
# moto's DynamoDB applies a transaction, and rolls a failed one back, by
# copying and restoring whole tables, with no lock: under concurrent requests
# a failed transaction restores its copy over other requests' writes. DynamoDB
# itself is serializable, so every table operation here takes one lock.
import functools, threading
from moto.dynamodb.models import DynamoDBBackend
_lock = threading.RLock()
def _serialized(method):
    @functools.wraps(method)
    def run(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)
    return run
# It also copies the whole table once per action of a transaction, which is
# quadratic in the table's size (an order of 10,000 codes takes minutes).
# Under the lock, saving and restoring just the items a transaction touches
# rolls back the same writes.
import copy
from moto.dynamodb.models.table import Table
_real_deepcopy = copy.deepcopy
_transacting = threading.local()
def _deepcopy(obj, *args, **kwargs):
    if getattr(_transacting, "on", False) and isinstance(obj, Table):
        return obj
    return _real_deepcopy(obj, *args, **kwargs)
copy.deepcopy = _deepcopy
def _item_undo(method):
    @functools.wraps(method)
    def run(self, transact_items, *args, **kwargs):
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            name = op.get("TableName")
            table = self.tables.get(name)
            if table is None:
                continue
            key = op.get("Key")
            if key is None:
                attrs = [table.hash_key_attr, table.range_key_attr]
                key = {a: op["Item"][a] for a in attrs if a and a in op.get("Item", {})}
            try:
                current = self.get_item(name, key)
            except Exception:
                current = None
            saved.append((name, key, current.to_json()["Attributes"] if current else None))
        _transacting.on = True
        try:
            return method(self, transact_items, *args, **kwargs)
        except Exception:
            for name, key, old in reversed(saved):
                if old is None:
                    try:
                        self.delete_item(name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(name, old)
            raise
        finally:
            _transacting.on = False
    return run
DynamoDBBackend.transact_write_items = _item_undo(DynamoDBBackend.transact_write_items)
for _name in ("put_item", "get_item", "update_item", "delete_item", "query", "scan",
              "transact_write_items", "transact_get_items", "batch_write_item",
              "batch_get_item"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))
# A write's answer too, when it returns an item: moto reads an update's
# ALL_OLD item in a call of its own before the update, and renders ALL_NEW
# from the live item after the backend call, so a request in between shows
# in another's answer (two containers told the same budget slot). DynamoDB
# answers each write from the item as that write left it: a write that
# asks for an item back runs under the lock from its first read to its
# answer. Other writes are not held there (their expressions, parsed in
# the handler, would queue every other write behind them).
from moto.dynamodb.responses import DynamoHandler
def _answered_whole(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self.body.get("ReturnValues", "NONE") == "NONE":
            return method(self, *args, **kwargs)
        with _lock:
            return method(self, *args, **kwargs)
    return run
for _name in ("put_item", "update_item", "delete_item"):
    setattr(DynamoHandler, _name, _answered_whole(getattr(DynamoHandler, _name)))
# A query of the table itself (not of an index) looks at every item of the
# table, sorted, for the few under one partition key; under the lock, it is
# given just those (in the same order).
_querying = threading.local()
_real_all_items = Table.all_items
def _all_items(self):
    key = getattr(_querying, "key", None)
    if key is None:
        return _real_all_items(self)
    found = self.items.get(key)
    if found is None:
        return []
    if self.range_key_attr:
        return sorted(found.values(), key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
    return [found]
import inspect
def _keyed_query(method):
    signature = inspect.signature(method)
    @functools.wraps(method)
    def run(self, hash_key, *args, **kwargs):
        named = signature.bind(self, hash_key, *args, **kwargs).arguments
        if named.get("index_name") is not None or hash_key is None:
            return method(self, hash_key, *args, **kwargs)
        _querying.key = hash_key
        try:
            return method(self, hash_key, *args, **kwargs)
        finally:
            _querying.key = None
    return run
Table.all_items = _all_items
Table.query = _keyed_query(Table.query)
# An update expression's clause counts and overlapping paths are checked
# at every node of its tree that is an UpdateExpression (most of them),
# each check walking that node's whole subtree: a third of DynamoDB's time
# under load, with updates of a dozen actions. A node's clauses and actions
# are among the root's, so checking the root alone refuses the same
# expressions (with another of the faults named when there are several).
# The overlap check looks names up unguarded: where the root meets an
# undefined name before a fault a nested node would have found first, the
# check runs as moto's own, so that fault is still a 400, not a 500.
from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator
from moto.dynamodb.parsing.ast_nodes import UpdateExpression as _UpdateExpression
def _root_only(traverse):
    @functools.wraps(traverse)
    def run(self, node):
        if isinstance(node, _UpdateExpression):
            try:
                return self.process(node)
            except KeyError:
                pass
        return traverse(self, node)
    return run
ActionCountValidator.traverse = _root_only(ActionCountValidator.traverse)
OverlappingPathsValidator.traverse = _root_only(OverlappingPathsValidator.traverse)
# moto finds which service a request is for by listing its own package
# directory, on every request and under one lock all requests share: listed
# once here, the same answer costs nothing (an eighth of moto's time under
# load went to it).
import moto.backends as _backends
_modules = tuple(_backends.list_of_moto_modules())
_backends.list_of_moto_modules = lambda: _modules
# A queue's retention period is looked up, for each message a receive
# looks at, by building all the queue's attributes twice (its message
# counts among them: a walk of every message), quadratic in the queue's
# depth; read here straight from the queue, as moto stores it (7 % of
# moto's time in a 500-order burst).
from moto.sqs.models import SQSBackend
from moto.core.utils import unix_time as _unix_time
def _retained(self, queue_name, message):
    period = self.get_queue(queue_name).message_retention_period
    return period + message.sent_timestamp / 1000 > _unix_time()
SQSBackend.is_message_valid_based_on_retention_period = _retained
# A send, too, builds all the queue's attributes (message counts and all)
# to read one: whether a FIFO queue dedupes by content. While a send runs,
# the queue answers just that (14 % of moto's time in the burst).
from moto.sqs.models import Queue
_all_attributes = Queue.attributes
_sending = threading.local()
def _attributes(self):
    if getattr(_sending, "on", False):
        dedupes = self.fifo_queue and bool(getattr(self, "content_based_deduplication", False))
        return {"ContentBasedDeduplication": "true" if dedupes else "false"}
    return _all_attributes.fget(self)
Queue.attributes = property(_attributes)
def _while_sending(method):
    @functools.wraps(method)
    def run(*args, **kwargs):
        before = getattr(_sending, "on", False)
        _sending.on = True
        try:
            return method(*args, **kwargs)
        finally:
            _sending.on = before
    return run
SQSBackend.send_message = _while_sending(SQSBackend.send_message)
# Each request's log line, formatted and handed to a logger that goes
# nowhere (moto's output is discarded): 6 % of moto's time under load.
from werkzeug.serving import WSGIRequestHandler
WSGIRequestHandler.log_request = lambda self, *args, **kwargs: None
# An item operation's answer is rendered by walking botocore's model of
# its output, value by value (a third of DynamoDB's time under load once
# the above was cut), when moto's result is already the JSON DynamoDB
# sends: it is sent as it is, but for the members the model does not name
# (a `ConsumedCapacityUnits` of moto's own), which the model leaves out.
# Errors, and results JSON cannot write, are rendered by the model still.
import json as _json
from moto.core.utils import get_service_model as _service_model
_ANSWERED_AS_IS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                   "TransactWriteItems", "TransactGetItems", "BatchGetItem", "BatchWriteItem")
_members = {}
_modelled = DynamoHandler.serialized
def _as_is(self, action_result):
    result = action_result.result
    action = self._get_action()
    if type(result) is not dict or action not in _ANSWERED_AS_IS:
        return _modelled(self, action_result)
    members = _members.get(action)
    if members is None:
        shape = _service_model("dynamodb").operation_model(action).output_shape
        members = _members[action] = frozenset(shape.members)
    try:
        body = _json.dumps({k: v for k, v in result.items() if k in members and v is not None})
    except (TypeError, ValueError):
        return _modelled(self, action_result)
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    headers.update(self.response_headers)
    return 200, headers, body
DynamoHandler.serialized = _as_is
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print("READY %d" % port, flush=True)
sys.stdin.read()
server.stop()
"#;

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error(
        "cannot run {python} to start moto_server: {source}; run `bash .ci/setup` (it installs moto[server] into target/venv) or set {PYTHON_ENV}"
    )]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("moto_server did not start: {0}")]
    Startup(String),
}

/// The local stack's AWS: two moto servers behind one endpoint, DynamoDB
/// on one and every other service on the other, each a Python process of
/// its own (moto serves requests one at a time, under Python's lock: two
/// processes use two cores). SNS and SQS stay together, since moto
/// delivers an SNS message to its SQS subscribers inside the process.
/// Stopped when dropped.
pub struct MotoServer {
    router: Router,
    dynamodb: Process,
    others: Process,
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer")
            .field("addr", &self.router.addr())
            .field("dynamodb", &self.dynamodb.addr)
            .field("others", &self.others.addr)
            .finish()
    }
}

impl MotoServer {
    /// Starts both moto servers on free loopback ports (at once), waits
    /// until they answer, and the router in front of them.
    pub fn start() -> Result<Self, MotoError> {
        let dynamodb = Process::spawn()?;
        let others = Process::spawn()?;
        let (dynamodb, others) = (dynamodb.ready()?, others.ready()?);
        let router = Router::start(dynamodb.addr, others.addr)
            .map_err(|e| MotoError::Startup(format!("the router in front of moto: {e}")))?;
        Ok(Self {
            router,
            dynamodb,
            others,
        })
    }

    /// The one address every service is reached at.
    pub fn addr(&self) -> SocketAddr {
        self.router.addr()
    }

    /// The endpoint to give the AWS SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Where DynamoDB's server is reached directly, past the router.
    pub fn dynamodb_endpoint_url(&self) -> String {
        format!("http://{}", self.dynamodb.addr)
    }

    /// Where the other services' server is reached directly.
    pub fn others_endpoint_url(&self) -> String {
        format!("http://{}", self.others.addr)
    }

    /// Stops the router and both servers, and waits for them to exit.
    pub fn stop(&self) {
        self.router.stop();
        self.dynamodb.stop();
        self.others.stop();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One moto server process.
struct Process {
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    addr: SocketAddr,
}

/// A moto process started, not yet known to answer.
struct Spawned {
    child: Child,
    stdout: ChildStdout,
    python: String,
}

impl Process {
    fn spawn() -> Result<Spawned, MotoError> {
        let python = python();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| MotoError::Spawn {
                python: python.clone(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Spawned {
            child,
            stdout,
            python,
        })
    }

    /// Stops the server and waits for it to exit.
    fn stop(&self) {
        drop(self.stdin.lock().map(|mut s| s.take()));
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_ready(&self) -> Result<(), MotoError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                let request = format!(
                    "GET /moto-api/data.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut status = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && BufReader::new(stream).read_line(&mut status).is_ok()
                    && status.starts_with("HTTP/1.")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(MotoError::Startup(format!(
                    "no answer on {} within {STARTUP_TIMEOUT:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Spawned {
    /// Waits for the server's port, then for it to answer.
    fn ready(self) -> Result<Process, MotoError> {
        let Self {
            mut child,
            stdout,
            python,
        } = self;
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .map_err(|e| MotoError::Startup(e.to_string()))?;
        let port: u16 = match first.trim().strip_prefix("READY ") {
            Some(port) => port
                .parse()
                .map_err(|_| MotoError::Startup(format!("odd answer {first:?}")))?,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let said = first.trim();
                return Err(MotoError::Startup(if said.is_empty() {
                    format!("{python} exited without starting it")
                } else {
                    said.to_owned()
                }));
            }
        };
        let stdin = child.stdin.take();
        let process = Process {
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        process.wait_until_ready()?;
        Ok(process)
    }
}
