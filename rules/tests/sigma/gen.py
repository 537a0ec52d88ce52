# Generates the Sigma test corpus (rules/linux/<category>/*.yml) in the SigmaHQ
# layout. Run from this folder: python3 gen.py. The files are committed; this
# script documents how they were written and keeps them consistent.
import os, textwrap
R = []
def rule(n, cat, title, det, level="medium", ls=None, extra=""):
    R.append((n, cat, title, textwrap.dedent(det).strip("\n"), level, ls, extra))

P = "process_creation"; N = "network_connection"; F = "file_event"; A = "auditd"
rule(1, P, "Netcat by image suffix", """
    selection:
        Image|endswith: '/nc'
    condition: selection""")
rule(2, P, "Netcat executing a shell (contains all)", """
    selection:
        CommandLine|contains|all:
            - ' -e '
            - '/bin/sh'
    condition: selection""", "high")
rule(3, P, "Execution from temporary directories (startswith list)", """
    selection:
        Image|startswith:
            - '/tmp/'
            - '/dev/shm/'
    condition: selection""")
rule(4, P, "Whoami exact image, case-insensitive", """
    selection:
        Image: '/usr/bin/WHOAMI'
    condition: selection""", "low")
rule(5, P, "Cased contains", """
    selection:
        CommandLine|contains|cased: 'SECRET'
    condition: selection""")
rule(6, P, "Curl piped to shell (wildcard star)", """
    selection:
        CommandLine: 'curl * | sh'
    condition: selection""", "high")
rule(7, P, "Python interpreter (wildcard question mark)", """
    selection:
        Image: '/usr/bin/p?thon3'
    condition: selection""", "informational")
rule(8, P, "Escaped wildcard is literal", """
    selection:
        CommandLine|contains: 'echo \\*'
    condition: selection""")
rule(9, P, "Base64 decode at start (regex, case-sensitive)", """
    selection:
        CommandLine|re: '^base64 -d'
    condition: selection""")
rule(10, P, "Base64 decode at start (regex, case-insensitive)", """
    selection:
        CommandLine|re|i: '^base64 -d'
    condition: selection""")
rule(11, P, "Base64-encoded hello in the command line", """
    selection:
        CommandLine|base64|contains: 'hello'
    condition: selection""")
rule(12, P, "Base64-encoded curl at any offset", """
    selection:
        CommandLine|base64offset|contains: 'curl '
    condition: selection""", "high")
rule(13, P, "Windash flag variants", """
    selection:
        CommandLine|windash|contains: ' -s '
    condition: selection""")
rule(14, P, "Selection and not filter", """
    selection:
        Image|endswith: '/bash'
    filter:
        ParentImage|endswith: '/sshd'
    condition: selection and not filter""")
rule(15, P, "One of selection_*", """
    selection_wget:
        Image|endswith: '/wget'
    selection_curl:
        Image|endswith: '/curl'
    condition: 1 of selection_*""")
rule(16, P, "All of selection_*", """
    selection_img:
        Image|endswith: '/tar'
    selection_cli:
        CommandLine|contains: '/etc/shadow'
    condition: all of selection_*""", "high")
rule(17, P, "One of them", """
    sel_a:
        Image|endswith: '/aaa'
    sel_b:
        Image|endswith: '/bbb'
    condition: 1 of them""")
rule(18, P, "All of them", """
    sel_a:
        Image|endswith: '/chmod'
    sel_b:
        CommandLine|contains: '+s'
    condition: all of them""")
rule(19, P, "Parenthesised condition", """
    sel_img:
        Image|endswith: '/find'
    sel_exec:
        CommandLine|contains: '-exec'
    sel_perm:
        CommandLine|contains: '-perm'
    condition: sel_img and (sel_exec or sel_perm)""")
rule(20, P, "List of maps is an OR", """
    selection:
        - Image|endswith: '/nmap'
        - CommandLine|contains: 'masscan'
    condition: selection""")
rule(21, P, "Null value means the field is absent", """
    selection:
        Image|endswith: '/orphan'
        ParentImage: null
    condition: selection""")
rule(22, P, "Exists modifier", """
    selection:
        Image|endswith: '/withparent'
        ParentCommandLine|exists: true
    condition: selection""")
rule(23, P, "User field", """
    selection:
        Image|endswith: '/passwd'
        User: 'root'
    condition: selection""")
rule(24, P, "Current directory", """
    selection:
        CurrentDirectory|startswith: '/tmp'
        Image|endswith: '/make'
    condition: selection""")
rule(25, P, "Keywords search the command line", """
    keywords:
        - 'xmrig'
        - 'minerd'
    condition: keywords""", "high")
rule(26, P, "Them excludes underscore identifiers", """
    selection:
        Image|endswith: '/visible'
    _helper:
        Image|endswith: '/hidden'
    condition: all of them""")
rule(27, P, "A condition list is an OR", """
    sel_a:
        Image|endswith: '/first'
    sel_b:
        Image|endswith: '/second'
    condition:
        - sel_a
        - sel_b""")
rule(28, P, "Numeric parent process id", """
    selection:
        ParentProcessId: 1
        Image|endswith: '/daemonized'
    condition: selection""")
rule(29, P, "Parent command line and parent image", """
    selection:
        ParentImage|endswith: '/python3'
        ParentCommandLine|contains: 'http.server'
        Image|endswith: '/sh'
    condition: selection""", "high")
rule(30, N, "Outbound connection to port 4444", """
    selection:
        DestinationPort: 4444
        Initiated: 'true'
    condition: selection""")
rule(31, N, "Connection to a private network (cidr)", """
    selection:
        DestinationIp|cidr:
            - '10.0.0.0/8'
            - '172.16.0.0/12'
    condition: selection""", "low")
rule(32, N, "Port range (gte/lt)", """
    selection:
        DestinationPort|gte: 1024
        DestinationPort|lt: 2048
    condition: selection""", "low")
rule(33, N, "String operator on an address", """
    selection:
        DestinationIp|startswith: '192.168.'
    condition: selection""", "low")
rule(34, F, "authorized_keys written", """
    selection:
        TargetFilename|endswith: '/authorized_keys'
    condition: selection""", "high")
rule(35, F, "Cron file created", """
    selection:
        TargetFilename|startswith: '/etc/cron.d/'
    condition: selection""")
rule(36, F, "ld.so.preload written (contains all)", """
    selection:
        TargetFilename|contains|all:
            - '/etc/'
            - 'preload'
    condition: selection""", "critical")
rule(37, A, "Netcat listener (auditd EXECVE)", """
    selection:
        type: 'EXECVE'
        a0: 'nc'
        a1: '-l'
    condition: selection""", "high", {"product": "linux", "service": "auditd"})
rule(38, A, "Sudoers accessed (auditd PATH)", """
    selection:
        type: 'PATH'
        name: '/etc/sudoers'
    condition: selection""", "medium", {"product": "linux", "service": "auditd"})
rule(39, A, "memfd_create (auditd SYSCALL)", """
    selection:
        type: 'SYSCALL'
        SYSCALL: 'memfd_create'
    condition: selection""", "high", {"product": "linux", "service": "auditd"})
rule(40, A, "Nmap ran (auditd SYSCALL exe)", """
    selection:
        type: 'SYSCALL'
        exe|endswith: '/nmap'
    condition: selection""", "low", {"product": "linux", "service": "auditd"})
rule(41, A, "Keyword search in auditd EXECVE (all)", """
    selection:
        type: 'EXECVE'
    keywords:
        '|all':
            - 'dd'
            - 'if='
    condition: selection and keywords""", "low", {"product": "linux", "service": "auditd"})
# Expressible nowhere in vigil: each must be skipped with its reason.
rule(50, N, "Onion domain", """
    selection:
        DestinationHostname|endswith: '.onion'
    condition: selection""")
rule(51, "sshd", "SSH log line", """
    keywords:
        - 'Failed password'
    condition: keywords""", "low", {"product": "linux", "service": "sshd"})
rule(52, "windows", "Windows process", """
    selection:
        Image|endswith: '\\\\cmd.exe'
    condition: selection""", "low", {"product": "windows", "category": "process_creation"})
rule(53, P, "UTF-16 text", """
    selection:
        CommandLine|wide|contains: 'x'
    condition: selection""")
rule(54, P, "Aggregation", """
    selection:
        Image|endswith: '/sh'
    condition: selection | count() by User > 10""")
rule(55, P, "Unknown field", """
    selection:
        LogonGuid: '{00000000-0000-0000-0000-000000000000}'
    condition: selection""")
rule(56, P, "Two of", """
    sel_a:
        Image|endswith: '/a'
    sel_b:
        Image|endswith: '/b'
    sel_c:
        Image|endswith: '/c'
    condition: 2 of sel_*""")
rule(57, "generic", "Any Linux log", """
    keywords:
        - 'segfault'
    condition: keywords""", "low", {"product": "linux"})
rule(58, A, "Service stop record", """
    selection:
        type: 'SERVICE_STOP'
    condition: selection""", "low", {"product": "linux", "service": "auditd"})

for (n, cat, title, det, level, ls, extra) in R:
    ls = ls or {"product": "linux", "category": cat}
    folder = {"sshd": "builtin/sshd", "windows": "other", "generic": "builtin"}.get(cat, cat if cat != A else "auditd")
    os.makedirs(f"rules/linux/{folder}", exist_ok=True)
    lsy = "\n".join(f"    {k}: {v}" for k, v in ls.items())
    body = f"""title: {title}
id: vt-{n:02d}
status: test
description: vigil Sigma test corpus rule {n}.
author: vigil
date: 2026-11-25
tags:
    - attack.execution
    - attack.t1059.004
logsource:
{lsy}
detection:
{textwrap.indent(det, '    ')}
falsepositives:
    - Tests
level: {level}
"""
    open(f"rules/linux/{folder}/vt_{n:02d}.yml", "w").write(body)
