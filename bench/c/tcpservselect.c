/*
 * The C opponent of the echo-server comparison (bench/, docs/benchmarks.md): the
 * select(2) TCP echo server of UNP's tcpservselect01 (section 6.8), written for
 * this crate, with the fixes the Rust EchoServer makes so that the comparison is
 * between two loops of the same shape:
 *
 *   - the listener is nonblocking and accept's "nothing there" errors (EAGAIN,
 *     ECONNABORTED, EPROTO, EINTR) send the loop back to select (UNP 16.6); one
 *     accept per turn, as the book;
 *   - connected sockets are nonblocking; a client gets at most one read(2) and one
 *     write(2) per turn; an echo the kernel does not take whole stays in that
 *     client's buffer and the client moves from the read set to the write set until
 *     it drains (back-pressure);
 *   - a descriptor >= FD_SETSIZE, or one more client than client[] holds, is closed
 *     instead of killing the server; a read/write error closes that client only.
 *
 * Two echoes, as unp_select::echo::Echo:
 *
 *   byte mode (default), the book's: what one read(2) of the shared buffer buf[]
 *     returned is written back with one write(2). Nothing is kept per client unless
 *     a write comes up short.
 *   line mode (-l): each client has its own MAXLINE buffer (allocated at its first
 *     read); one read appends to it, then every whole line in it, at most
 *     LINES_PER_TURN (16), goes back in ONE write straight from that buffer. Lines
 *     beyond the quota wait for the next turn, which then does not sleep in select
 *     and does not read that client. A buffer full of bytes without a newline is
 *     sent as one piece.
 *
 *   cc -O2 -o tcpservselect tcpservselect.c && ./tcpservselect [-l] 127.0.0.1:9877
 *
 * With -DACCEPT_LOOP, one readiness of the listener accepts until accept(2) finds
 * the queue empty (EAGAIN), instead of the book's one accept per select: the
 * opponent of the connection-churn benchmark (bench/src/churn.rs).
 *
 * It prints "ready IP:PORT PID" once listening (port 0 picks a free port), and runs
 * until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXLINE 4096
#define LISTENQ 1024
#define LINES_PER_TURN 16

struct client {
    int fd;        /* -1: free, as UNP's client[i] */
    char *buf;     /* this client's bytes: [off, off + owed) promised echo, then input */
    size_t off;    /* start of live bytes in buf */
    size_t len;    /* live bytes */
    size_t owed;   /* the first owed live bytes are echo the kernel has not taken */
    size_t scanned; /* live bytes after owed known to hold no '\n' */
    int again;     /* line mode: whole lines left for the next turn */
};

static int line_mode;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl");
}

static char *client_buf(struct client *c)
{
    if (c->buf == NULL && (c->buf = malloc(MAXLINE)) == NULL)
        die("malloc");
    return c->buf;
}

/* Line mode: how many live bytes after owed are this turn's echo (at most
 * LINES_PER_TURN whole lines), and whether whole lines remain after them. */
static size_t echoable(struct client *c, int *more)
{
    char *p = c->buf + c->off + c->owed;
    size_t rest = c->len - c->owed, end = 0, skip = c->scanned;
    int lines = 0;
    *more = 0;
    while (lines < LINES_PER_TURN && end < rest) {
        char *nl = memchr(p + end + skip, '\n', rest - end - skip);
        skip = 0;
        if (nl == NULL) {
            if (end == 0 && rest == MAXLINE) {
                end = rest; /* a full buffer without a newline: one piece */
                break;
            }
            c->scanned = rest - end;
            return end;
        }
        end = (size_t)(nl - p) + 1;
        lines++;
    }
    c->scanned = 0;
    if (end < rest && memchr(p + end, '\n', rest - end) != NULL)
        *more = 1;
    return end;
}

/* Writes the first n live bytes once; the rest of them becomes owed. Returns -1
 * on a real error. */
static int send_live(struct client *c, size_t n)
{
    ssize_t w = write(c->fd, c->buf + c->off, n);
    if (w == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        w = 0;
    }
    c->off += (size_t)w;
    c->len -= (size_t)w;
    c->owed = n - (size_t)w;
    if (c->len == 0)
        c->off = 0;
    return 0;
}

int main(int argc, char **argv)
{
    int i, maxi, maxfd, listenfd, connfd, sockfd, nready;
    static struct client client[FD_SETSIZE];
    fd_set rset, wset, allset, wallset;
    static char buf[MAXLINE];
    struct sockaddr_in servaddr;
    char host[64];
    int port;
    const char *colon, *addr;

    if (argc == 3 && strcmp(argv[1], "-l") == 0) {
        line_mode = 1;
        addr = argv[2];
    } else if (argc == 2) {
        addr = argv[1];
    } else {
        addr = NULL;
    }
    if (addr == NULL || (colon = strrchr(addr, ':')) == NULL ||
        (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "usage: %s [-l] IPV4:PORT\n", argv[0]);
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port = atoi(colon + 1);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    if ((listenfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
        die("socket");
    int on = 1;
    setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    memset(&servaddr, 0, sizeof servaddr);
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &servaddr.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        return 2;
    }
    if (bind(listenfd, (struct sockaddr *)&servaddr, sizeof servaddr) == -1)
        die("bind");
    if (listen(listenfd, LISTENQ) == -1)
        die("listen");
    set_nonblocking(listenfd);
    socklen_t alen = sizeof servaddr;
    if (getsockname(listenfd, (struct sockaddr *)&servaddr, &alen) == -1)
        die("getsockname");
    printf("ready %s:%d %d\n", host, ntohs(servaddr.sin_port), (int)getpid());
    fflush(stdout);

    maxfd = listenfd;
    maxi = -1;
    for (i = 0; i < FD_SETSIZE; i++)
        client[i].fd = -1;
    FD_ZERO(&allset);
    FD_ZERO(&wallset);
    FD_SET(listenfd, &allset);
    int writers = 0; /* clients in wallset */
    int backlog = 0; /* clients with again set */
    struct timeval zero;

    for (;;) {
        rset = allset;
        wset = wallset;
        zero.tv_sec = 0;
        zero.tv_usec = 0;
        nready = select(maxfd + 1, &rset, writers ? &wset : NULL, NULL,
                        backlog ? &zero : NULL);
        if (nready == -1) {
            if (errno == EINTR)
                continue;
            die("select");
        }

        if (FD_ISSET(listenfd, &rset)) {
#ifdef ACCEPT_LOOP
          for (;;) { /* -DACCEPT_LOOP: accept until the queue is empty */
#endif
            connfd = accept4(listenfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#ifdef ACCEPT_LOOP
            if (connfd == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EMFILE ||
                                 errno == ENFILE))
                break;
#endif
            if (connfd == -1) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED &&
                    errno != EPROTO && errno != EINTR && errno != EMFILE && errno != ENFILE)
                    die("accept");
            } else if (connfd >= FD_SETSIZE) {
                close(connfd); /* does not fit an fd_set */
            } else {
                for (i = 0; i < FD_SETSIZE; i++)
                    if (client[i].fd < 0) {
                        client[i].fd = connfd;
                        client[i].off = client[i].len = client[i].owed = 0;
                        client[i].scanned = 0;
                        client[i].again = 0;
                        break;
                    }
                if (i == FD_SETSIZE) {
                    close(connfd); /* too many clients */
                } else {
                    FD_SET(connfd, &allset);
                    if (connfd > maxfd)
                        maxfd = connfd;
                    if (i > maxi)
                        maxi = i;
                }
            }
#ifdef ACCEPT_LOOP
          }
#endif
            nready--;
        }

        int todo = backlog; /* backlog clients not yet served this turn */
        for (i = 0; i <= maxi && (nready > 0 || todo > 0); i++) {
            struct client *c = &client[i];
            if ((sockfd = c->fd) < 0)
                continue;
            int closeit = 0;
            if (c->owed > 0) {
                if (!FD_ISSET(sockfd, &wset))
                    continue;
                nready--;
                if (send_live(c, c->owed) < 0) {
                    closeit = 1;
                } else if (c->owed == 0) {
                    FD_CLR(sockfd, &wallset);
                    writers--;
                    int more;
                    if (line_mode && c->len > 0 && echoable(c, &more) > 0) {
                        c->again = 1; /* whole lines buffered: next turn */
                        backlog++;
                    } else {
                        FD_SET(sockfd, &allset);
                    }
                }
            } else if (c->again) {
                /* line mode: lines left from an earlier read; no read this turn */
                todo--;
                int more;
                size_t n = echoable(c, &more);
                if (send_live(c, n) < 0) {
                    closeit = 1;
                } else {
                    if (c->owed > 0 || !more) {
                        c->again = 0;
                        backlog--;
                    }
                    if (c->owed > 0) {
                        FD_SET(sockfd, &wallset);
                        writers++;
                    } else if (!more) {
                        FD_SET(sockfd, &allset);
                    }
                }
            } else if (FD_ISSET(sockfd, &rset)) {
                nready--;
                if (!line_mode) {
                    ssize_t n = read(sockfd, buf, MAXLINE);
                    if (n == 0) {
                        closeit = 1; /* connection closed by client */
                    } else if (n < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                            closeit = 1; /* ECONNRESET and friends */
                    } else {
                        ssize_t w = write(sockfd, buf, (size_t)n);
                        if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
                            errno != EINTR) {
                            closeit = 1;
                        } else if (w < n) {
                            if (w < 0)
                                w = 0;
                            memcpy(client_buf(c), buf + w, (size_t)(n - w));
                            c->off = 0;
                            c->len = c->owed = (size_t)(n - w);
                            FD_CLR(sockfd, &allset);
                            FD_SET(sockfd, &wallset);
                            writers++;
                        }
                    }
                } else {
                    char *b = client_buf(c);
                    if (c->off > 0) {
                        memmove(b, b + c->off, c->len); /* a partial line */
                        c->off = 0;
                    }
                    ssize_t n = read(sockfd, b + c->len, MAXLINE - c->len);
                    if (n == 0) {
                        /* EOF: echo the unterminated tail, if any, and close */
                        if (c->len > 0)
                            (void)write(sockfd, b + c->off, c->len);
                        closeit = 1;
                    } else if (n < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                            closeit = 1;
                    } else {
                        c->len += (size_t)n;
                        int more;
                        size_t e = echoable(c, &more);
                        if (e > 0 && send_live(c, e) < 0) {
                            closeit = 1;
                        } else if (c->owed > 0) {
                            FD_CLR(sockfd, &allset);
                            FD_SET(sockfd, &wallset);
                            writers++;
                        } else if (more) {
                            FD_CLR(sockfd, &allset);
                            c->again = 1;
                            backlog++;
                        }
                    }
                }
            } else {
                continue;
            }
            if (closeit) {
                close(sockfd);
                FD_CLR(sockfd, &allset);
                if (FD_ISSET(sockfd, &wallset)) {
                    FD_CLR(sockfd, &wallset);
                    writers--;
                }
                if (c->again) {
                    c->again = 0;
                    backlog--;
                }
                c->fd = -1;
                c->off = c->len = c->owed = c->scanned = 0;
            }
        }
    }
}
