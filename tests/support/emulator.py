#!/usr/bin/env python3
"""Test-support launcher: moto's server app plus the few pieces moto lacks.

`privlink-restart` integration tests run against moto (5.2.x) in server mode.
Moto covers what the CLI touches except for these gaps:

  * SSM DescribeInstanceInformation is not implemented (500): nothing says
    which instances are SSM-managed and Online.
  * ECS DescribeContainerInstances always shows a healthy agent (connected,
    ACTIVE, agentVersion "1.0.0", no version/agentUpdateStatus).
  * SSM SendCommand with InstanceIds also targets every EC2 instance of the
    region (absent Targets = unfiltered EC2 query), ListCommands shows that
    list, every invocation is instantly Success with empty output, and
    ListCommandInvocations / CancelCommand are not implemented (500).
  * ECS task answers give a container's cpu/memory as numbers; the ECS model
    says strings, and the SDKs reject the whole answer.
  * ECS tasks leave RUNNING once described (default "manual, times 1").
  * ECS DeleteAttributes deletes a custom attribute only when the request
    repeats its value; ECS deletes by name (the API reference says not to
    give the value).
  * EC2 RebootInstances has no visible effect: the agent never disconnects.
  * Auto Scaling DescribeInstanceRefreshes is not implemented.
  * Nothing runs on the instances: the path probe (a command whose script
    contains "privlink-restart probe") has nothing to report.

This is NOT a home-made AWS: it wraps moto's own WSGI app (the one
`moto/server.py` runs, `DomainDispatcherApplication(create_backend_app)`) and
intercepts only these X-Amz-Target operations; all else goes to moto as is.
  AmazonSSM.DescribeInstanceInformation, ListCommandInvocations,
    GetCommandInvocation, CancelCommand      answered from launcher state
  AmazonSSM.SendCommand, ListCommands        moto, then only requested ids
  AmazonEC2ContainerServiceV20141113.DescribeContainerInstances
                                             moto, then agent overrides
  AmazonEC2ContainerServiceV20141113.DescribeTasks, StartTask, RunTask, StopTask
                                             moto, then container cpu/memory as
                                             strings (the ECS model's type)
  AmazonEC2ContainerServiceV20141113.DeleteAttributes
                                             stored values filled in, then moto
  EC2 RebootInstances (query protocol)      recorded, then moto; the agent of
                                             each instance shows disconnected
                                             for a while (see reboot-behaviour)
  Auto Scaling DescribeInstanceRefreshes     none in progress (an empty list)
ECS tasks are pinned to "manual, never" on start and reset (stay RUNNING).

Control routes (no AWS signing; JSON in, 200 JSON out):
  POST /_privlink/reset                  moto reset, launcher state cleared
  POST /_privlink/ssm/managed-instances  {"instances": [{"InstanceId": "i-1",
       "PingStatus": "Online|ConnectionLost|Inactive", "PlatformType":
       "Linux|Windows", "PlatformName", "AgentVersion", "LastPingDateTime"
       (epoch s), "IsLatestVersion"}], "replace": false}  merged by InstanceId
  POST /_privlink/ecs/agent-state        {"i-1": {"agentConnected": false,
       "agentVersion": "1.20.0", "status": "DRAINING", "agentUpdateStatus":
       "FAILED", "version": 7}, "i-2": null}  merged per ec2InstanceId; null
       drops it; agentVersion goes to versionInfo, other keys are set as-is.
  POST /_privlink/ssm/command-results    {"i-1": {"status": "Success|Failed|
       TimedOut|...", "statusDetails", "output", "stderr", "responseCode",
       "held": true}}  merged per instance, copied into each invocation at
       SendCommand. Defaults: Success, empty output, statusDetails = status
       (TimedOut: DeliveryTimedOut), responseCode 0/1/-1. A held invocation is
       InProgress until released; the script stays held for later commands.
  POST /_privlink/ssm/probe-results      {"i-1": {"status", "output",
       "outputAfterRestart", ...}} like command-results, but for path probes
       only (commands whose script contains "privlink-restart probe"). Once a
       restart (a command with "PRIVLINK_METHOD=") has succeeded on the instance,
       or it was rebooted, its probe prints outputAfterRestart (when given), as
       an agent that moved onto the endpoints would. A probe of an instance
       without a result succeeds with empty output (the tool judges it unknown).
  POST /_privlink/ssm/refuse             {"instanceIds": ["i-1"]}: SendCommand
       naming one of them fails whole with InvalidInstanceId, as SSM does for
       instances it cannot command (unmanaged, stopped, terminated).
  POST /_privlink/ssm/release            {"instanceIds": ["i-1"]} releases
       the held invocations those instances have now.
  POST /_privlink/ec2/endpoint-state     {"vpce-1": "pending"} sets the state
       of moto's endpoint object (moto makes every endpoint "available").
  POST /_privlink/faults                 {"ec2:DescribeNetworkAcls": {"status": 403,
       "code": "UnauthorizedOperation", "message": "..."}, "ssm:X": null}
       makes that operation fail (EC2 as an XML error, ECS/SSM as JSON) until
       reset or null; for fail-closed tests.
  POST /_privlink/ec2/reboot-behaviour   {"downAfter": 1, "downFor": 4}: after
       RebootInstances an instance's agent shows disconnected from downAfter to
       downAfter + downFor seconds (defaults 1 and 4), as a rebooting host's would.
  GET  /_privlink/ec2/reboots            {"Reboots": {"i-1": [epoch s, ...]}}
  GET  /_privlink/ssm/commands           recorded commands: id, document,
       parameters, comment, requested instance ids, invocation statuses, and
       whether it was a path probe ("Probe").
CommandPlugins[].Output is built as the SSM agent does (stdout, ERROR title,
stderr, max 2,500 chars, "---Output truncated---"); GetCommandInvocation has
the first 24,000/8,000 chars of stdout/stderr. CancelCommand, like AWS, only
cancels unfinished (held) invocations. State is shared by accounts/regions.

Usage: python3 tests/support/emulator.py [--port N]   (default port 0)
Prints one line `PRIVLINK_EMULATOR_PORT=<port>`, then serves on 127.0.0.1.
It exits when stdin reaches EOF: spawn it with a stdin pipe (not /dev/null)
and hold the write end. Later stray prints from moto go to stderr, so an
undrained stdout pipe cannot block the server.
"""
import argparse
import datetime
import gzip
import io
import json
import os
import sys
import threading
import time
import urllib.parse

from werkzeug.serving import WSGIRequestHandler, make_server
from moto.ec2.models import ec2_backends
from moto.moto_api import state_manager
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

JSON11 = "application/x-amz-json-1.1"
STDOUT_MAX, STDERR_MAX = 24000, 8000  # GetCommandInvocation limits


def pin_task_transitions():
    # "manual" advances a task once it was described `times` times. Moto tests
    # `tick >= times`, so times=-1 would advance on EVERY read: use "never".
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 2**62})


def plugin_output(stdout, stderr, capacity=2500):
    """CommandPlugins[].Output as the SSM agent builds it (iohandler.TruncateOutput)."""
    out_mark, err_mark = "\n---Output truncated---", "\n---Error truncated----"
    title = "\n----------ERROR-------\n" if stderr else ""
    space = capacity - len(title)
    if len(stdout) + len(stderr) < space:
        return stdout + title + stderr
    if len(stdout) > space / 2 and len(stderr) > space / 2:
        keep = (space - len(err_mark) - len(out_mark)) // 2
        return stdout[:keep] + out_mark + title + stderr[:keep] + err_mark
    if len(stdout) < space / 2:
        return stdout + title + stderr[: space - len(err_mark) - len(stdout)] + err_mark
    return stdout[: space - len(out_mark) - len(stderr)] + out_mark + title + stderr


def iso(ts):
    utc = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AwsError(Exception):
    """An error answer: an AWS JSON error, or moto's own reply passed on (raw)."""

    def __init__(self, code, message, status=400, raw=None):
        super().__init__(message)
        self.code, self.message, self.status, self.raw = code, message, status, raw


def page(items, params, default_max=50):
    """Slice `items` with MaxResults / NextToken (the token is an offset)."""
    try:
        start = int(params.get("NextToken") or 0)
    except ValueError:
        raise AwsError("InvalidNextToken", "The specified token isn't valid.")
    end = start + int(params.get("MaxResults") or default_max)
    return items[start:end], ({"NextToken": str(end)} if end < len(items) else {})


class Emulator:
    def __init__(self, moto_app):
        self.moto_app, self.lock = moto_app, threading.RLock()
        self.clear()
        self.ops = {
            "AmazonSSM.DescribeInstanceInformation": self.describe_instance_information,
            "AmazonSSM.SendCommand": self.send_command,
            "AmazonSSM.ListCommands": self.list_commands,
            "AmazonSSM.ListCommandInvocations": self.list_command_invocations,
            "AmazonSSM.GetCommandInvocation": self.get_command_invocation,
            "AmazonSSM.CancelCommand": self.cancel_command,
            "AmazonEC2ContainerServiceV20141113.DescribeContainerInstances": self.describe_container_instances,
            "AmazonEC2ContainerServiceV20141113.DescribeTasks": self.tasks_with_string_sizes,
            "AmazonEC2ContainerServiceV20141113.StartTask": self.tasks_with_string_sizes,
            "AmazonEC2ContainerServiceV20141113.RunTask": self.tasks_with_string_sizes,
            "AmazonEC2ContainerServiceV20141113.StopTask": self.tasks_with_string_sizes,
            "AmazonEC2ContainerServiceV20141113.DeleteAttributes": self.delete_attributes,
        }

    def clear(self):
        self.managed = {}   # InstanceId -> InstanceInformation
        self.agents = {}    # ec2InstanceId -> container instance overrides
        self.scripts = {}   # InstanceId -> scripted command result
        self.probes = {}    # InstanceId -> scripted path-probe result
        self.commands = {}  # CommandId -> recorded command (insertion ordered)
        self.faults = {}    # "ec2:DescribeNetworkAcls" -> {"status", "code", "message"}
        self.refused = set()  # instance ids SendCommand refuses (InvalidInstanceId)
        self.reboots = {}   # InstanceId -> [epoch seconds of each RebootInstances]
        self.reboot_window = (1.0, 4.0)  # agent away from +downAfter for downFor seconds

    # ---- WSGI plumbing ---------------------------------------------------
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.faults and not path.startswith("/_privlink/"):
            fault = self.fault_for(environ)
            if fault is not None:
                return fault(start_response)
        op = self.ops.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if op is None and not path.startswith("/_privlink/"):
            query = self.query_action(environ)
            if query is not None:
                return query(start_response)
            return self.moto_app(environ, start_response)
        length, stream = environ.get("CONTENT_LENGTH"), environ["wsgi.input"]
        raw = stream.read(int(length)) if length else stream.read() if environ.get("wsgi.input_terminated") else b""
        try:
            if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
                raw = gzip.decompress(raw)  # and forward it plain: moto's server would decompress twice
            params = json.loads(raw or b"{}")
            with self.lock:
                if path.startswith("/_privlink/"):
                    return self.reply(start_response, 200, self.control(path, params), "application/json")
                return self.reply(start_response, 200, op(environ, raw, params))
        except AwsError as err:
            if err.raw is None:
                return self.reply(start_response, err.status, {"__type": err.code, "message": err.message})
            headers, data = err.raw  # moto refused the forwarded request: pass its answer on
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
            start_response(f"{err.status} Error", headers + [("Content-Length", str(len(data)))])
            return [data]

    @staticmethod
    def reply(start_response, status, obj, content_type=JSON11):
        data = json.dumps(obj).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]

    def call_moto(self, environ, raw):
        """Run the (already read, decompressed) request through moto; return its JSON answer."""
        env = dict(environ, **{"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))})
        env.pop("HTTP_CONTENT_ENCODING", None)
        seen, chunks = {}, []

        def start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = int(status.split()[0]), headers
            return chunks.append

        result = self.moto_app(env, start_response)
        try:
            chunks.extend(result)  # a list of bytes or a generator
        finally:
            if hasattr(result, "close"):
                result.close()
        data = b"".join(chunks)
        if any(k.lower() == "content-encoding" and v.lower() == "gzip" for k, v in seen["headers"]):
            data = gzip.decompress(data)
        if seen["status"] >= 300:
            raise AwsError("", "", seen["status"], raw=(seen["headers"], data))
        return json.loads(data or b"{}")

    def fault_for(self, environ):
        """An injected error for this request's operation, if a test asked for one. Reads
        (and puts back) the body: EC2 names its operation in the form body."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            service = "ssm" if target.startswith("AmazonSSM.") else "ecs"
            action = f"{service}:{target.split('.')[-1]}"
        else:
            length = environ.get("CONTENT_LENGTH")
            raw = environ["wsgi.input"].read(int(length)) if length else b""
            environ["wsgi.input"] = io.BytesIO(raw)
            form = urllib.parse.parse_qs(raw.decode(errors="replace"))
            service = "ec2" if "/ec2/aws4_request" in environ.get("HTTP_AUTHORIZATION", "") else "other"
            action = f"{service}:{form.get('Action', [''])[0]}"
        with self.lock:
            fault = self.faults.get(action)
        if fault is None:
            return None
        status, code, message = fault.get("status", 403), fault.get("code", "AccessDenied"), fault.get("message", "injected")
        if target:
            return lambda start_response: self.reply(start_response, status, {"__type": code, "message": message})
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>injected</RequestID></Response>").encode()

        def reply_xml(start_response):
            start_response(f"{status} Error", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return reply_xml

    def query_action(self, environ):
        """The query-protocol (form-encoded) operations the launcher handles itself, if
        this request is one: EC2 RebootInstances is recorded (then goes to moto), Auto
        Scaling DescribeInstanceRefreshes is answered. Reads and puts back the body."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if "/ec2/aws4_request" not in auth and "/autoscaling/aws4_request" not in auth:
            return None
        length = environ.get("CONTENT_LENGTH")
        raw = environ["wsgi.input"].read(int(length)) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        body = gzip.decompress(raw) if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip" else raw
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        action = form.get("Action", [""])[0]
        if action == "RebootInstances":
            now = time.time()
            with self.lock:
                for key, values in form.items():
                    if key.startswith("InstanceId."):
                        self.reboots.setdefault(values[0], []).append(now)
            return None
        if action == "DescribeInstanceRefreshes":
            xml = ('<DescribeInstanceRefreshesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                   "<DescribeInstanceRefreshesResult><InstanceRefreshes/></DescribeInstanceRefreshesResult>"
                   "<ResponseMetadata><RequestId>privlink-emulator</RequestId></ResponseMetadata>"
                   "</DescribeInstanceRefreshesResponse>").encode()

            def reply_xml(start_response):
                start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))])
                return [xml]
            return reply_xml
        return None

    def rebooting(self, instance_id):
        """Whether the instance's agent is away now because of a recent reboot."""
        after, length = self.reboot_window
        now = time.time()
        return any(t + after <= now < t + after + length for t in self.reboots.get(instance_id, []))

    # ---- control routes --------------------------------------------------
    def control(self, path, params):
        if path == "/_privlink/reset":
            moto_api_backend.reset()
            self.clear()
            pin_task_transitions()
        elif path == "/_privlink/ssm/managed-instances":
            if params.get("replace"):
                self.managed = {}
            for inst in params.get("instances", []):
                self.managed.setdefault(inst["InstanceId"], {
                    "PingStatus": "Online", "PlatformType": "Linux", "PlatformName": "Amazon Linux",
                    "PlatformVersion": "2023", "AgentVersion": "3.3.0.0", "LastPingDateTime": time.time(),
                    "ResourceType": "EC2Instance", "IsLatestVersion": True}).update(inst)
        elif path == "/_privlink/ecs/agent-state":
            for iid, override in params.items():
                if override is None:
                    self.agents.pop(iid, None)
                else:
                    self.agents.setdefault(iid, {}).update(override)
        elif path == "/_privlink/ec2/endpoint-state":
            # moto creates every VPC endpoint "available"; set the state on moto's own object.
            for endpoint_id, state in params.items():
                found = [backend.vpc_end_points[endpoint_id]
                         for regions in ec2_backends.values() for backend in regions.values()
                         if endpoint_id in backend.vpc_end_points]
                if not found:
                    raise AwsError("NotFound", f"no VPC endpoint {endpoint_id}", 404)
                for endpoint in found:
                    endpoint.state = state
        elif path == "/_privlink/faults":
            self.faults.update({action: f for action, f in params.items() if f is not None})
            for action in [a for a, f in params.items() if f is None]:
                self.faults.pop(action, None)
        elif path == "/_privlink/ssm/command-results":
            for iid, script in params.items():
                self.scripts.setdefault(iid, {}).update(script)
        elif path == "/_privlink/ssm/probe-results":
            for iid, script in params.items():
                self.probes.setdefault(iid, {}).update(script)
        elif path == "/_privlink/ssm/refuse":
            self.refused.update(params.get("instanceIds", []))
        elif path == "/_privlink/ssm/release":
            for rec in self.commands.values():
                for iid in params.get("instanceIds", []):
                    inv = rec["invocations"].get(iid)
                    if inv and inv["held"]:
                        inv.update(held=False, ended=time.time())
        elif path == "/_privlink/ec2/reboot-behaviour":
            self.reboot_window = (float(params.get("downAfter", 1)), float(params.get("downFor", 4)))
        elif path == "/_privlink/ec2/reboots":
            return {"Reboots": self.reboots}
        elif path == "/_privlink/ssm/commands":
            return {"Commands": [{
                "CommandId": cid, "DocumentName": rec["DocumentName"], "Parameters": rec["Parameters"],
                "Comment": rec["Comment"], "InstanceIds": rec["InstanceIds"], "Probe": rec["Probe"],
                "Statuses": {iid: self.view(inv)["Status"] for iid, inv in rec["invocations"].items()},
            } for cid, rec in self.commands.items()]}
        else:
            raise AwsError("NotFound", f"unknown control route {path}", 404)
        return {"status": "ok"}

    # ---- SSM: managed instances ------------------------------------------
    def describe_instance_information(self, environ, raw, params):
        wanted = {}
        for f in params.get("InstanceInformationFilterList", []):
            wanted.setdefault(f["key"], set()).update(f["valueSet"])
        for f in params.get("Filters", []):
            wanted.setdefault(f["Key"], set()).update(f["Values"])
        if set(wanted) - {"InstanceIds"}:
            raise AwsError("InvalidFilterKey", f"emulator supports only InstanceIds, got {sorted(wanted)}")
        ids = wanted.get("InstanceIds")
        items, token = page([dict(i, InstanceId=k) for k, i in self.managed.items() if ids is None or k in ids], params)
        return {"InstanceInformationList": items, **token}

    # ---- SSM: Run Command ------------------------------------------------
    def send_command(self, environ, raw, params):
        # Like SSM: one instance that cannot take commands fails the whole call.
        refused = [iid for iid in params.get("InstanceIds", []) if iid in self.refused]
        if refused:
            raise AwsError("InvalidInstanceId", f"Instances [[{', '.join(refused)}]] not in a valid state "
                           "for account 123456789012")
        answer = self.call_moto(environ, raw)
        cmd = answer["Command"]
        requested = params.get("InstanceIds") or [
            v for t in params.get("Targets", []) if t["Key"] == "InstanceIds" for v in t["Values"]
        ] or cmd["InstanceIds"]  # tag Targets: keep what moto resolved
        doc, now, invocations = params.get("DocumentName", ""), time.time(), {}
        probe = any("privlink-restart probe" in c for c in params.get("Parameters", {}).get("commands", []))
        for iid in dict.fromkeys(requested):
            s = (self.probes if probe else self.scripts).get(iid, {})
            if probe and "outputAfterRestart" in s and self.moved(iid):
                s = dict(s, output=s["outputAfterRestart"])
            status = s.get("status", "Success")
            invocations[iid] = {
                "status": status, "held": bool(s.get("held")), "started": now, "ended": now,
                "statusDetails": s.get("statusDetails", "DeliveryTimedOut" if status == "TimedOut" else status),
                "output": s.get("output", ""), "stderr": s.get("stderr", ""),
                "responseCode": s.get("responseCode", {"Success": 0, "Failed": 1}.get(status, -1)),
            }
        self.commands[cmd["CommandId"]] = {
            "DocumentName": doc, "Parameters": params.get("Parameters", {}), "Comment": params.get("Comment", ""),
            "InstanceIds": list(invocations), "RequestedDateTime": now, "invocations": invocations, "Probe": probe,
            "PluginName": "aws:runPowerShellScript" if doc == "AWS-RunPowerShellScript" else "aws:runShellScript",
        }
        self.fix_command(cmd)
        return answer

    def moved(self, iid):
        """Whether a restart succeeded on the instance, or it was rebooted."""
        if self.reboots.get(iid):
            return True
        return any(
            "PRIVLINK_METHOD=" in "".join(rec["Parameters"].get("commands", []))
            and iid in rec["invocations"] and self.view(rec["invocations"][iid])["Status"] == "Success"
            for rec in self.commands.values())

    def list_commands(self, environ, raw, params):
        answer, iid = self.call_moto(environ, raw), params.get("InstanceId")
        rec = lambda c: self.commands.get(c["CommandId"], {"InstanceIds": [iid]})  # noqa: E731
        # moto matches InstanceId against its inflated list: drop what was not requested.
        answer["Commands"] = [self.fix_command(c) for c in answer.get("Commands", [])
                              if not iid or iid in rec(c)["InstanceIds"]]
        return answer

    def fix_command(self, cmd):
        """Make a moto Command show the requested instances and their statuses."""
        rec = self.commands.get(cmd["CommandId"])
        if rec is None:
            return cmd
        statuses = [self.view(inv)["Status"] for inv in rec["invocations"].values()]
        overall = next((s for s in ("InProgress", "Failed", "TimedOut", "Cancelled") if s in statuses), "Success")
        cmd.update(InstanceIds=rec["InstanceIds"], TargetCount=len(statuses), Status=overall, StatusDetails=overall,
                   CompletedCount=len(statuses) - statuses.count("InProgress"), ErrorCount=statuses.count("Failed"),
                   DeliveryTimedOutCount=statuses.count("TimedOut"))
        return cmd

    @staticmethod
    def view(inv):
        """What an invocation reports right now (held = still InProgress)."""
        if inv["held"]:
            return {"Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1, "out": "", "err": ""}
        return {"Status": inv["status"], "StatusDetails": inv["statusDetails"],
                "ResponseCode": inv["responseCode"], "out": inv["output"], "err": inv["stderr"]}

    def command(self, cid):
        if cid not in self.commands:
            raise AwsError("InvalidCommandId", "Invalid command id.")
        return self.commands[cid]

    def list_command_invocations(self, environ, raw, params):
        cid, iid = params.get("CommandId"), params.get("InstanceId")
        items = [(c, rec, i, inv) for c, rec in self.commands.items() for i, inv in rec["invocations"].items()
                 if (not cid or c == cid) and (not iid or i == iid)]
        items, token = page(items, params)
        out = []
        for c, rec, i, inv in items:
            v = self.view(inv)
            plugins = [{
                "Name": rec["PluginName"], "Status": v["Status"], "StatusDetails": v["StatusDetails"],
                "ResponseCode": v["ResponseCode"], "ResponseStartDateTime": inv["started"],
                **({} if inv["held"] else {"ResponseFinishDateTime": inv["ended"]}),
                "Output": plugin_output(v["out"], v["err"])}]
            out.append({"CommandId": c, "InstanceId": i, "Comment": rec["Comment"], "DocumentName": rec["DocumentName"],
                        "DocumentVersion": "$DEFAULT", "RequestedDateTime": rec["RequestedDateTime"],
                        "Status": v["Status"], "StatusDetails": v["StatusDetails"],
                        "CommandPlugins": plugins if params.get("Details") else []})
        return {"CommandInvocations": out, **token}

    def get_command_invocation(self, environ, raw, params):
        cid, iid = params.get("CommandId"), params.get("InstanceId")
        rec = self.command(cid)
        if iid not in rec["invocations"]:
            raise AwsError("InvocationDoesNotExist", "Command invocation does not exist.")
        if params.get("PluginName") not in (None, rec["PluginName"]):
            raise AwsError("InvalidPluginName", "The plugin name is not valid.")
        inv = rec["invocations"][iid]
        v, done = self.view(inv), not inv["held"]
        return {"CommandId": cid, "InstanceId": iid, "Comment": rec["Comment"], "DocumentName": rec["DocumentName"],
                "DocumentVersion": "$DEFAULT", "PluginName": rec["PluginName"], "ResponseCode": v["ResponseCode"],
                "ExecutionStartDateTime": iso(inv["started"]),
                "ExecutionElapsedTime": f"PT{inv['ended'] - inv['started']:.3f}S" if done else "",
                "ExecutionEndDateTime": iso(inv["ended"]) if done else "",
                "Status": v["Status"], "StatusDetails": v["StatusDetails"],
                "StandardOutputContent": v["out"][:STDOUT_MAX], "StandardErrorContent": v["err"][:STDERR_MAX]}

    def cancel_command(self, environ, raw, params):
        for iid, inv in self.command(params.get("CommandId"))["invocations"].items():
            if inv["held"] and iid in params.get("InstanceIds", [iid]):  # finished ones stay as they are
                inv.update(held=False, ended=time.time(), status="Cancelled", statusDetails="Cancelled",
                           responseCode=-1, output="", stderr="")
        return {}

    # ---- ECS ---------------------------------------------------------------
    def describe_container_instances(self, environ, raw, params):
        answer = self.call_moto(environ, raw)
        for ci in answer.get("containerInstances", []):
            for key, value in self.agents.get(ci.get("ec2InstanceId"), {}).items():
                if key == "agentVersion":
                    ci.setdefault("versionInfo", {})["agentVersion"] = value
                else:
                    ci[key] = value
            if self.rebooting(ci.get("ec2InstanceId")):
                ci["agentConnected"] = False
        return answer


    def tasks_with_string_sizes(self, environ, raw, params):
        """moto writes a task container's cpu/memory/memoryReservation as numbers; the ECS
        model (and so every SDK) has them as strings and rejects the whole answer."""
        answer = self.call_moto(environ, raw)
        for task in answer.get("tasks", []) + ([answer["task"]] if "task" in answer else []):
            for holder in [task] + task.get("containers", []):
                for key in ("cpu", "memory", "memoryReservation"):
                    if isinstance(holder.get(key), (int, float)):
                        holder[key] = str(holder[key])
        return answer


    def delete_attributes(self, environ, raw, params):
        """ECS deletes a custom attribute by name; moto only when the value matches. Fill in
        each stored value (read through moto's own DescribeContainerInstances), then forward."""
        by_name = [a for a in params.get("attributes", []) if "value" not in a and a.get("targetId")]
        if by_name:
            env = dict(environ, HTTP_X_AMZ_TARGET="AmazonEC2ContainerServiceV20141113.DescribeContainerInstances")
            query = {"cluster": params.get("cluster"), "containerInstances": [a["targetId"] for a in by_name]}
            described = self.call_moto(env, json.dumps(query).encode())
            stored = {(ci.get("containerInstanceArn"), attribute.get("name")): attribute.get("value")
                      for ci in described.get("containerInstances", [])
                      for attribute in ci.get("attributes", [])}
            for attribute in by_name:
                value = stored.get((attribute["targetId"], attribute["name"]))
                if value is not None:
                    attribute["value"] = value
            raw = json.dumps(params).encode()
        return self.call_moto(environ, raw)


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    pin_task_transitions()
    app = Emulator(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=QuietHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)  # moto builds self-referencing URLs from it
    sys.stdout.write(f"PRIVLINK_EMULATOR_PORT={server.server_port}\n")
    sys.stdout.flush()
    os.dup2(2, 1)  # anything moto prints later goes to stderr

    def exit_on_stdin_eof():
        while os.read(0, 4096):
            pass
        os._exit(0)

    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
