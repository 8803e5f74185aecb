/*
 * The C baseline of the echo benchmark (examples/echo_bench.rs): the select(2) TCP
 * echo server of UNP's tcpservselect01 (section 6.8), written for this crate, with
 * the same fixes the Rust EchoServer makes so the comparison is fair:
 *
 *   - the listener is nonblocking and accept's "nothing there" errors (EAGAIN,
 *     ECONNABORTED, EPROTO, EINTR) send the loop back to select (UNP 16.6);
 *   - connected sockets are nonblocking; an echo the kernel does not take whole is
 *     kept in that client's own buffer and the client moves from the read set to
 *     the write set until it drains (the Rust server's back-pressure);
 *   - a descriptor >= FD_SETSIZE, or one more client than client[] holds, is closed
 *     instead of killing the server; a read/write error closes that client only.
 *
 * Like the book it echoes what one read(2) returns (up to MAXLINE bytes), without
 * splitting it into lines.
 *
 *   cc -O2 -o tcpservselect tcpservselect.c && ./tcpservselect 127.0.0.1:9877
 *
 * It prints "ready IP:PORT PID" once listening (port 0 picks a free port), and runs
 * until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

struct client {
    int fd;        /* -1: free, as UNP's client[i] */
    char *pend;    /* echo bytes the kernel has not taken yet */
    size_t plen;   /* how many */
};

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

/* Writes what the kernel takes now; returns bytes written or -1 on a real error. */
static ssize_t try_writen(int fd, const char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n == -1 && errno == EINTR) {
            continue;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)done;
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
    const char *colon;

    if (argc != 2 || (colon = strrchr(argv[1], ':')) == NULL ||
        (size_t)(colon - argv[1]) >= sizeof host) {
        fprintf(stderr, "usage: %s IPV4:PORT\n", argv[0]);
        return 2;
    }
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    host[colon - argv[1]] = '\0';
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

    for (;;) {
        rset = allset;
        wset = wallset;
        nready = select(maxfd + 1, &rset, writers ? &wset : NULL, NULL, NULL);
        if (nready == -1) {
            if (errno == EINTR)
                continue;
            die("select");
        }

        if (FD_ISSET(listenfd, &rset)) {
            connfd = accept4(listenfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
                        client[i].plen = 0;
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
            if (--nready <= 0)
                continue;
        }

        for (i = 0; i <= maxi; i++) {
            struct client *c = &client[i];
            if ((sockfd = c->fd) < 0)
                continue;
            int closeit = 0;
            if (c->plen > 0 && FD_ISSET(sockfd, &wset)) {
                ssize_t n = try_writen(sockfd, c->pend, c->plen);
                if (n < 0) {
                    closeit = 1;
                } else {
                    memmove(c->pend, c->pend + n, c->plen - (size_t)n);
                    c->plen -= (size_t)n;
                    if (c->plen == 0) {
                        FD_CLR(sockfd, &wallset);
                        writers--;
                        FD_SET(sockfd, &allset);
                    }
                }
                if (--nready <= 0 && !closeit)
                    break;
            } else if (FD_ISSET(sockfd, &rset)) {
                ssize_t n = read(sockfd, buf, MAXLINE);
                if (n == 0) {
                    closeit = 1; /* connection closed by client */
                } else if (n < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                        closeit = 1; /* ECONNRESET and friends */
                } else {
                    ssize_t w = try_writen(sockfd, buf, (size_t)n);
                    if (w < 0) {
                        closeit = 1;
                    } else if (w < n) {
                        if (c->pend == NULL && (c->pend = malloc(MAXLINE)) == NULL)
                            die("malloc");
                        memcpy(c->pend, buf + w, (size_t)(n - w));
                        c->plen = (size_t)(n - w);
                        FD_CLR(sockfd, &allset);
                        FD_SET(sockfd, &wallset);
                        writers++;
                    }
                }
                if (--nready <= 0 && !closeit)
                    break;
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
                c->fd = -1;
                c->plen = 0;
                if (nready <= 0)
                    break;
            }
        }
    }
}
