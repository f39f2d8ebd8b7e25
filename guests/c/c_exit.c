/* exit(argv[1]): the status must come out of the runtime unchanged. */
#include <stdlib.h>

int main(int argc, char **argv) {
    exit(argc > 1 ? atoi(argv[1]) : 0);
}
